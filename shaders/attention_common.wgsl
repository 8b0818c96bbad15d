// What every attention kernel shares (launch.rs puts this file before each of them). The bindings
// of each pass (attention_bindings_*.wgsl) end with `info`: batch, heads, kv_heads, q_len, kv_len,
// q_start (the absolute position of query 0; the keys before it are cached), window (0:
// unlimited), scale (f32 bits).

// Head dimension in vec4 units: rows are read as vec4s.
const D: u32 = {{ head_dim_vec4 }}u;

struct Attention {
    heads: u32,
    kv_heads: u32,
    q_len: u32,
    kv_len: u32,
    q_start: u32,
    window: u32,
    scale: f32,
}

fn read_info() -> Attention {
    return Attention(info[1], info[2], info[3], info[4], info[5], info[6], bitcast<f32>(info[7]));
}

// Whether the query at absolute position `pos` sees the key at `key`.
fn sees(a: Attention, pos: u32, key: u32) -> bool {
    return key <= pos && (a.window == 0u || pos - key < a.window);
}

// The keys that some query of `rows` rows from `first_row` sees: `begin..end`.
fn key_range(a: Attention, first_row: u32, rows: u32) -> vec2<u32> {
    let first_pos = a.q_start + first_row;
    let begin = select(0u, first_pos + 1u - min(a.window, first_pos + 1u), a.window != 0u);
    return vec2<u32>(begin, min(a.kv_len, a.q_start + min(first_row + rows, a.q_len)));
}

// The queries that see some key of `keys` keys from `first_key`: `begin..end`.
fn query_range(a: Attention, first_key: u32, keys: u32) -> vec2<u32> {
    let last_key = min(first_key + keys, a.kv_len) - 1u;
    let begin = select(0u, first_key - a.q_start, first_key > a.q_start);
    let window_end = select(0u, last_key + a.window - a.q_start, last_key + a.window > a.q_start);
    return vec2<u32>(begin, select(a.q_len, min(a.q_len, window_end), a.window != 0u));
}
