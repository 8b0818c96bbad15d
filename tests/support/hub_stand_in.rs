//! A stand-in for the Hugging Face Hub on 127.0.0.1, serving its API and file layout for
//! `owner/tiny` (tiny-llama's files), `owner/gated` (401 without the token `secret`) and nothing
//! else (404): the engine's and the app's download tests start one each. Nothing else is reached.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wgtune::download::Hub;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The dataset `owner/qa`'s two splits.
pub const TRAIN: &str = "data/train-00000-of-00001.parquet";
pub const TEST: &str = "data/test-00000-of-00001.parquet";
/// The dataset `owner/shards`'s train split.
pub const SHARDS: [&str; 2] = ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"];
/// The dataset `owner/escape`'s train split: a listing that names a file outside the repository.
pub const ESCAPING: &str = "../../../escaped/train-00000-of-00001.parquet";
const FILES: [&str; 6] =
    ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "model.safetensors"];

/// What the stand-in does besides serving files.
#[derive(Default)]
pub struct Behaviour {
    /// Send only half of this file's bytes on its first full request, then hang up.
    pub cut_once: Option<String>,
    /// Flip a byte of this file (its etag stays the sha256 of the right bytes).
    pub corrupt: Option<String>,
    /// Send the weights in eight parts a few milliseconds apart, so that a progress bar shows.
    pub slow: bool,
}

/// tiny-qwen2's files: a model whose weights are five shards and their index.
fn sharded_files() -> Vec<String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2");
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with("golden") || n.starts_with("model-") || n == "chat_template.jinja")
        .collect();
    names.sort();
    names
}

pub struct StandIn {
    pub endpoint: String,
    /// Every request, as `PATH RANGE`.
    log: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    /// Serves `owner/tiny` (tiny-llama's files), `owner/gated` (401 without a token) and nothing
    /// else (404), on a thread that ends with the test process.
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
        let mut files: HashMap<String, Vec<u8>> = FILES.iter().map(|f| (f.to_string(), std::fs::read(folder.join(f)).unwrap())).collect();
        files.insert("qa.parquet".into(), std::fs::read(folder.join("../data/qa.parquet")).unwrap());
        for name in sharded_files() {
            files.insert(format!("sharded/{name}"), std::fs::read(folder.join("../tiny-qwen2").join(&name)).unwrap());
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let served = log.clone();
        std::thread::spawn(move || {
            let mut behaviour = behaviour;
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &files, &mut behaviour, &served);
            }
        });
        Self { endpoint, log }
    }

    pub fn hub(&self, cache: &Path, token: Option<&str>) -> Hub {
        Hub { endpoint: self.endpoint.clone(), cache: cache.to_path_buf(), token: token.map(str::to_string) }
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>, behaviour: &mut Behaviour, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut range, mut authorized) = (None, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or(("", ""));
        match name.to_ascii_lowercase().as_str() {
            "range" => range = value.trim().strip_prefix("bytes=").map(str::to_string),
            "authorization" => authorized = value.trim() == "Bearer secret",
            _ => {}
        }
    }
    log.lock().unwrap().push(format!("{path} {}", range.as_deref().unwrap_or("-")));
    let mut out = stream;
    let respond = |out: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8], length: usize| {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        out.write_all(head.as_bytes())?;
        out.write_all(b"\r\n")?;
        out.write_all(body)?;
        out.flush()
    };
    let not_found = |out: &mut TcpStream| respond(out, "404 Not Found", &[], b"{\"error\":\"Repository Not Found\"}", 31);

    // The search: every model whose id holds the text.
    if let Some(query) = path.strip_prefix("/api/models?") {
        let search = query.split('&').find_map(|p| p.strip_prefix("search=")).unwrap_or_default();
        let found: Vec<String> =
            ["owner/tiny", "owner/gated"].iter().filter(|id| id.contains(search)).map(|id| format!("{{\"id\":\"{id}\"}}")).collect();
        let body = format!("[{}]", found.join(","));
        return respond(&mut out, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes(), body.len());
    }
    // Datasets: owner/qa, a Parquet file with columns of its own as its train and test splits;
    // owner/shards, the same file twice as the two shards of its train split; owner/escape, a
    // listing that points outside the repository (its file is never served).
    let listing = match path.as_str() {
        "/api/datasets/owner/qa/revision/main" => Some(vec!["README.md", TRAIN, TEST]),
        "/api/datasets/owner/shards/revision/main" => Some(vec![SHARDS[0], SHARDS[1]]),
        "/api/datasets/owner/escape/revision/main" => Some(vec![ESCAPING]),
        _ => None,
    };
    if let Some(listing) = listing {
        let siblings: Vec<String> = listing.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
        let body = format!("{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
        return respond(&mut out, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes(), body.len());
    }
    let dataset_file = path
        .strip_prefix("/datasets/owner/qa/resolve/main/")
        .filter(|f| [TRAIN, TEST].contains(f))
        .or_else(|| path.strip_prefix("/datasets/owner/shards/resolve/main/").filter(|f| SHARDS.contains(f)));
    if let Some(repo) = path.strip_prefix("/api/models/").and_then(|p| p.strip_suffix("/revision/main")) {
        return match repo {
            "owner/gated" if !authorized => respond(&mut out, "401 Unauthorized", &[], b"{}", 2),
            "owner/sharded" => {
                // Beside the index's shards, a file no loader needs, which must not be fetched.
                let names = sharded_files().into_iter().chain(["consolidated.safetensors".to_string()]);
                let siblings: Vec<String> = names.map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
                let body = format!("{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
                respond(&mut out, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes(), body.len())
            }
            "owner/tiny" | "owner/gated" => {
                let siblings: Vec<String> = FILES.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
                let body = format!("{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
                respond(&mut out, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes(), body.len())
            }
            _ => not_found(&mut out),
        };
    }
    // A model's file by its name; a dataset's splits are both the one Parquet file.
    let (file, content) = match dataset_file {
        Some(file) => (file, &files["qa.parquet"]),
        None => {
            let file = path.strip_prefix("/owner/tiny/resolve/main/").or_else(|| path.strip_prefix("/owner/gated/resolve/main/"));
            let sharded = path.strip_prefix("/owner/sharded/resolve/main/");
            let found = match sharded {
                Some(f) => files.get(&format!("sharded/{f}")).map(|content| (f, content)),
                None => file.and_then(|f| Some((f, files.get(f)?))),
            };
            match found {
                Some(found) => found,
                None => return not_found(&mut out),
            }
        }
    };
    // LFS files (weights, Parquet) go by their sha256, the others by their git blob hash.
    let hex = |digest: &[u8]| digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let lfs = file.ends_with(".safetensors") || file.ends_with(".parquet");
    let etag = match lfs {
        true => hex(&Sha256::digest(content)),
        false => hex(&sha1::Sha1::new().chain_update(format!("blob {}\0", content.len())).chain_update(content).finalize()),
    };
    let mut body = content.clone();
    if behaviour.corrupt.as_deref() == Some(file) {
        body[100] ^= 0xff;
    }
    let start: usize = range.as_deref().and_then(|r| r.split('-').next()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let end = match range.as_deref().and_then(|r| r.split_once('-')).map(|(_, e)| e) {
        Some(e) if !e.is_empty() => e.parse::<usize>().unwrap_or(body.len() - 1),
        _ => body.len() - 1,
    };
    let headers = vec![
        ("ETag".to_string(), format!("\"{etag}\"")),
        ("X-Repo-Commit".to_string(), COMMIT.to_string()),
        ("Content-Range".to_string(), format!("bytes {start}-{end}/{}", body.len())),
    ];
    let part = &body[start..=end];
    let is_full_request = end + 1 == body.len() && part.len() > 1;
    if is_full_request && behaviour.cut_once.as_deref() == Some(file) {
        behaviour.cut_once = None;
        // Promise all of it, send half, hang up.
        return respond(&mut out, "206 Partial Content", &headers, &part[..part.len() / 2], part.len());
    }
    if behaviour.slow && is_full_request && file.ends_with(".safetensors") {
        let mut head = format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nConnection: close\r\n", part.len());
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        out.write_all(format!("{head}\r\n").as_bytes())?;
        for chunk in part.chunks(part.len().div_ceil(8)) {
            out.write_all(chunk)?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        return Ok(());
    }
    respond(&mut out, "206 Partial Content", &headers, part, part.len())
}
