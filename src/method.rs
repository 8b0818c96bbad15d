//! Fine-tuning methods: which parameters train, and LoRA adapters on the decoder projections.

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{CausalLm, ModelConfig, Precision};
use crate::params::PathStack;

/// The linear layers of a decoder layer LoRA can adapt, by their checkpoint names.
pub const LORA_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// Phi-3's stacked projections: `qkv_proj` stands for q, k and v, `gate_up_proj` for gate and up.
pub const FUSED_TARGETS: [(&str, &[&str]); 2] =
    [("qkv_proj", &["q_proj", "k_proj", "v_proj"]), ("gate_up_proj", &["gate_proj", "up_proj"])];

/// The modules `names` stand for in a model of `config`: with fused projections (Phi-3)
/// `qkv_proj` for any of q, k and v and `gate_up_proj` for gate or up, and without them the
/// reverse; in the order of [`LORA_TARGETS`], each once.
pub fn resolve_targets(names: &[String], config: &ModelConfig) -> Vec<String> {
    let wanted = |name: &str| names.iter().any(|n| n == name);
    let mut out: Vec<String> = Vec::new();
    for target in LORA_TARGETS {
        let fused = FUSED_TARGETS.iter().find(|(_, parts)| parts.contains(&target));
        let chosen = match fused {
            Some((whole, parts)) if config.fused_projections => (wanted(target) || wanted(whole)).then_some(*whole),
            Some((whole, _)) => (wanted(target) || wanted(whole)).then_some(target),
            None => wanted(target).then_some(target),
        };
        if let Some(name) = chosen
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSettings {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Names among [`LORA_TARGETS`].
    pub target_modules: Vec<String>,
    /// Scale by `alpha / sqrt(rank)` (rsLoRA) instead of `alpha / rank`.
    pub rslora: bool,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self { rank: 16, alpha: 32.0, dropout: 0.05, target_modules: LORA_TARGETS.iter().map(|s| s.to_string()).collect(), rslora: false }
    }
}

impl LoraSettings {
    pub fn scale(&self) -> f64 {
        if self.rslora { self.alpha / (self.rank as f64).sqrt() } else { self.alpha / self.rank as f64 }
    }

    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::setting("method.rank", "must be at least 1"));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::setting("method.alpha", format!("must be a positive number, not {}", self.alpha)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::setting("method.dropout", "must be in [0, 1)"));
        }
        if self.target_modules.is_empty() {
            return Err(Error::setting("method.target_modules", "name at least one module"));
        }
        for name in &self.target_modules {
            if !LORA_TARGETS.contains(&name.as_str()) && !FUSED_TARGETS.iter().any(|(whole, _)| whole == name) {
                return Err(Error::setting(
                    "method.target_modules",
                    format!("unknown module `{name}` (one of {}, or Phi-3's qkv_proj, gate_up_proj)", LORA_TARGETS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Checks the rank against the smallest side of the layers it adapts: a rank beyond it adds
    /// parameters without adding capacity (and a huge one exhausts memory).
    pub fn validate_for(&self, config: &ModelConfig) -> Result<()> {
        self.validate()?;
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let (q, kv) = (config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim);
        for name in &resolve_targets(&self.target_modules, config) {
            let (d_in, d_out) = match name.as_str() {
                "q_proj" => (h, q),
                "k_proj" | "v_proj" => (h, kv),
                "qkv_proj" => (h, q + 2 * kv),
                "o_proj" => (q, h),
                "gate_proj" | "up_proj" => (h, i),
                "gate_up_proj" => (h, 2 * i),
                _ => (i, h),
            };
            let most = d_in.min(d_out);
            if self.rank > most {
                return Err(Error::setting(
                    "method.rank",
                    format!("{} is larger than {name}'s smaller dimension ({d_in} × {d_out}); use a rank of at most {most}", self.rank),
                ));
            }
        }
        Ok(())
    }

    /// These settings with the target modules a model of `config` names them by (see
    /// [`resolve_targets`]): what is attached, saved and exported.
    pub fn for_model(&self, config: &ModelConfig) -> Self {
        Self { target_modules: resolve_targets(&self.target_modules, config), ..self.clone() }
    }

    /// Module paths (`layers.3.self_attn.q_proj.weight`) this adapter attaches to.
    fn pattern(&self) -> String {
        format!(r"^layers\.\d+\.(self_attn|mlp)\.({})\.weight$", self.target_modules.join("|"))
    }
}

/// How a model is fine-tuned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Method {
    /// Low-rank adapters on the chosen projections; every base weight is frozen.
    Lora(LoraSettings),
    /// Every weight trains.
    Full,
    /// Only the last `layers` decoder layers train.
    TopLayers { layers: usize },
    /// Only parameters whose path has one of these components (`q_proj`, `mlp`, `norm`,
    /// `embed_tokens`, `lm_head`, `layers.29`, ...) train.
    Modules { names: Vec<String> },
}

impl Default for Method {
    fn default() -> Self {
        Method::Lora(LoraSettings::default())
    }
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Lora(_) => "lora",
            Method::Full => "full",
            Method::TopLayers { .. } => "top_layers",
            Method::Modules { .. } => "modules",
        }
    }

    pub fn lora(&self) -> Option<&LoraSettings> {
        match self {
            Method::Lora(settings) => Some(settings),
            _ => None,
        }
    }

    /// The precision the model's weight matrices are loaded in for a run computing in `compute`:
    /// LoRA freezes them, so in f16 they are stored in f16; weights that train stay f32 masters
    /// (cast to f16 for each matmul).
    pub fn storage_precision(&self, compute: Precision) -> Precision {
        if self.lora().is_some() { compute } else { Precision::F32 }
    }

    /// Marks what trains and attaches adapters, the frozen projections of one input sharing one
    /// matmul ([`CausalLm::share_frozen_bases`]). Returns an error naming the setting at fault.
    pub fn apply(&self, model: CausalLm) -> Result<CausalLm> {
        self.apply_with(model, true)
    }

    /// [`Self::apply`]; `share_bases` off keeps every projection's base apart (to measure the
    /// difference).
    pub fn apply_with(&self, model: CausalLm, share_bases: bool) -> Result<CausalLm> {
        let share = |model: CausalLm| if share_bases { model.share_frozen_bases() } else { model };
        match self {
            Method::Lora(settings) => {
                settings.validate_for(&model.config)?;
                Ok(train_score_head(attach_lora(model, settings, share_bases)))
            }
            Method::Full => Ok(model.unfreeze()),
            Method::TopLayers { layers } => {
                let total = model.num_layers();
                if *layers == 0 || *layers > total {
                    return Err(Error::setting("method.layers", format!("must be between 1 and {total}")));
                }
                let first = total - layers;
                let indices: Vec<String> = (first..total).map(|i| i.to_string()).collect();
                let group = regex_group(&format!(r"^layers\.({})\.", indices.join("|")))?;
                Ok(share(train_score_head(model.freeze().unfreeze_group(group))))
            }
            Method::Modules { names } => {
                if names.is_empty() {
                    return Err(Error::setting("method.names", "name at least one module"));
                }
                let escaped: Vec<String> = names.iter().map(|n| regex_escape(n)).collect();
                let pattern = format!(r"(^|\.)({})(\.|$)", escaped.join("|"));
                let model = share(train_score_head(model.freeze().unfreeze_group(regex_group(&pattern)?)));
                if trainable_parameters(&model) == 0 {
                    return Err(Error::setting(
                        "method.names",
                        format!("no parameter matches {names:?} (try q_proj, mlp, norm, embed_tokens, lm_head, layers.0)"),
                    ));
                }
                Ok(model)
            }
        }
    }
}

fn regex_group(pattern: &str) -> Result<ParamGroup> {
    ParamGroup::from_regex(pattern).map_err(|e| Error::setting("method", format!("{e:?}")))
}

fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if "\\.+*?()|[]{}^$".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

/// A classifier's head is new and always trained, whatever else is frozen (PEFT's
/// `modules_to_save`).
pub(crate) fn train_score_head(model: CausalLm) -> CausalLm {
    if model.score.is_none() {
        return model;
    }
    model.unfreeze_group(ParamGroup::from_regex(r"^score\.").expect("a valid regex"))
}

/// Attaches Burn's LoRA adapters, initialised as PEFT does: `A` uniform in ±1/√d_in (Kaiming
/// uniform with a = √5), `B` zero. `share_bases`: let the frozen projections of one input share
/// one matmul ([`CausalLm::share_frozen_bases`]); off only to measure what that changes.
pub fn attach_lora(model: CausalLm, settings: &LoraSettings, share_bases: bool) -> CausalLm {
    let settings = &settings.for_model(&model.config);
    // Burn scales by alpha / rank; rsLoRA's alpha / sqrt(rank) is the same with a larger alpha.
    let alpha = settings.scale() * settings.rank as f64;
    // Cannot fail: every caller validated `target_modules` against LORA_TARGETS (plain words), so
    // the pattern is always the same valid regex with other alternatives.
    let group = ParamGroup::from_regex(settings.pattern()).expect("the target pattern is a valid regex");
    // The factors train in f32 whatever the frozen weights are stored in.
    let lora = Lora::new(settings.rank, alpha).set_param_group(group).set_dtype(FloatDType::F32);
    let model = model.freeze();
    let model = if share_bases { model.share_frozen_bases() } else { model };
    let model = model.apply_lora(lora);
    model.map(&mut AdapterInit::default())
}

/// Re-initialises every `lora.a` factor (`[d_in, r]`) as PEFT does.
#[derive(Default)]
struct AdapterInit {
    stack: PathStack,
}

impl ModuleMapper for AdapterInit {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.stack.path().ends_with(".lora.a") {
            return param;
        }
        param.map(|t| {
            let bound = 1.0 / (t.dims()[0] as f64).sqrt();
            // Drawn on the host from the run's seed: the same factors on every device.
            let a = Tensor::from_data(crate::seed::uniform(t.shape(), -bound, bound), &t.device());
            if t.is_require_grad() { a.require_grad() } else { a }
        })
    }
}

/// Number of parameters that train.
pub fn trainable_parameters<M: Module>(model: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    model.visit(&mut count);
    count.0
}
