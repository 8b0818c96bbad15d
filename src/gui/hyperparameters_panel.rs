//! The hyperparameters panel: method, LoRA rank and alpha, optimizer, schedule and loop settings,
//! with the trainable-parameter count and memory estimate updated as they change.

use crate::device::DeviceChoice;
use crate::inspect::{StepPlan, estimate_memory, human_bytes, human_count, trainable_count};
use crate::method::{LORA_TARGETS, LoraSettings, Method};
use crate::model::{BaseQuant, Precision};
use crate::presets::Preset;
use crate::train::ScheduleKind;
use eframe::egui;

use super::app::WgtuneApp;
use super::picker::PickKind;

/// The precision checkbox; in f16, LoRA also stores the frozen weights in half their memory.
const F16_LABEL: &str = "Matmuls in f16 (LoRA: frozen weights in half the memory)";

impl WgtuneApp {
    pub fn hyperparameters_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Hyperparameters");
        ui.horizontal(|ui| {
            if ui.button("Load settings…").clicked() {
                self.jobs.pick(PickKind::SettingsFile);
            }
            if ui.button("Save settings…").clicked() {
                self.jobs.pick(PickKind::SaveSettingsFile);
            }
            if let Some(message) = &self.training.settings_message {
                ui.label(message);
            }
        });
        ui.add_space(6.0);
        self.presets_ui(ui);
        ui.add_space(6.0);
        self.method_ui(ui);
        ui.add_space(6.0);
        self.estimate_ui(ui);
        ui.add_space(6.0);
        self.optimizer_ui(ui);
        ui.add_space(6.0);
        self.loop_ui(ui);
    }

    /// The starting points, sized to the chosen model and dataset, each showing what it sets
    /// (in the Model tab and here).
    pub(super) fn presets_ui(&mut self, ui: &mut egui::Ui) {
        let sizes = self.model.summary.as_ref().map(|m| m.parameters).zip(self.dataset.preview.as_ref().map(|p| p.report.train_examples));
        ui.horizontal_wrapped(|ui| {
            ui.label("Starting point");
            let Some((parameters, examples)) = sizes else {
                ui.weak("(choose a model and a dataset: the presets are sized to them)");
                return;
            };
            for preset in Preset::ALL {
                let s = preset.settings(parameters, examples, self.settings.config.batch_size);
                let steps = match s.max_steps {
                    Some(steps) => format!("{steps} steps"),
                    None => format!("{} epochs", s.epochs),
                };
                let hover = format!("LoRA rank {}, alpha {}, learning rate {:.1e}, {steps}", s.rank, s.alpha, s.lr);
                let text = format!("{} (rank {}, lr {:.0e}, {steps})", preset.name(), s.rank, s.lr);
                if ui.button(text).on_hover_text(hover).clicked() {
                    preset.apply(&mut self.settings.config, parameters, examples);
                }
            }
        });
    }

    fn method_ui(&mut self, ui: &mut egui::Ui) {
        let layers = self.model.summary.as_ref().map_or(32, |m| m.config.num_hidden_layers);
        let method = &mut self.settings.config.method;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label("Method");
                let mut kind = method.name();
                egui::ComboBox::from_id_salt("method").selected_text(method_label(kind)).show_ui(ui, |ui| {
                    for k in ["lora", "full", "top_layers", "modules"] {
                        ui.selectable_value(&mut kind, k, method_label(k));
                    }
                });
                if kind != method.name() {
                    *method = match kind {
                        "lora" => Method::Lora(LoraSettings::default()),
                        "full" => Method::Full,
                        "top_layers" => Method::TopLayers { layers: 2.min(layers) },
                        _ => Method::Modules { names: vec!["norm".into()] },
                    };
                }
            });
            match method {
                Method::Lora(lora) => lora_ui(ui, lora),
                Method::Full => {
                    ui.label("Every weight trains: the most memory, the most capacity.");
                }
                Method::TopLayers { layers: n } => {
                    ui.add(egui::Slider::new(n, 1..=layers).text("top layers trained"));
                }
                Method::Modules { names } => {
                    let mut text = names.join(",");
                    ui.horizontal(|ui| {
                        ui.label("Modules");
                        if ui.text_edit_singleline(&mut text).changed() {
                            *names = text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                        }
                    });
                    ui.label("Path components that train, e.g. norm, lm_head, embed_tokens, mlp, layers.29");
                }
            }
        });
    }

    fn estimate_ui(&self, ui: &mut egui::Ui) {
        let Some(model) = &self.model.summary else {
            ui.label("Choose a model to see the trainable parameters and the memory estimate.");
            return;
        };
        let config = &self.settings.config;
        let trainable = trainable_count(&model.config, &config.method);
        let plan = StepPlan::of(config, self.device_on_wgpu);
        let memory = estimate_memory(&model.config, &config.method, config.batch_size, config.data.max_seq_len, plan);
        ui.horizontal(|ui| {
            ui.label(
                egui::RichText::new(format!(
                    "Trainable parameters: {} of {} ({:.3}%)",
                    human_count(trainable),
                    human_count(model.parameters),
                    100.0 * trainable as f64 / model.parameters.max(1) as f64
                ))
                .strong(),
            );
            ui.separator();
            ui.label(format!("Estimated training memory: {}", human_bytes(memory.total))).on_hover_text(format!(
                "weights {}, AdamW state {}, then the larger of gradients {} and activations {} + logits {}",
                human_bytes(memory.weights),
                human_bytes(memory.moments),
                human_bytes(memory.gradients),
                human_bytes(memory.activations),
                human_bytes(memory.logits)
            ));
        });
    }

    fn optimizer_ui(&mut self, ui: &mut egui::Ui) {
        let o = &mut self.settings.config.optim;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("Optimizer (AdamW)").strong());
            egui::Grid::new("optimizer").num_columns(2).show(ui, |ui| {
                ui.label("Learning rate");
                let speed = o.lr * 0.01;
                ui.add(egui::DragValue::new(&mut o.lr).speed(speed).range(1e-7..=1.0).custom_formatter(|v, _| format!("{v:.2e}")));
                ui.end_row();
                ui.label("Schedule");
                egui::ComboBox::from_id_salt("schedule").selected_text(format!("{:?}", o.schedule).to_lowercase()).show_ui(ui, |ui| {
                    for kind in [ScheduleKind::Cosine, ScheduleKind::Linear, ScheduleKind::Constant] {
                        ui.selectable_value(&mut o.schedule, kind, format!("{kind:?}").to_lowercase());
                    }
                });
                ui.end_row();
                ui.label("Warm-up steps");
                ui.add(egui::DragValue::new(&mut o.warmup_steps).range(0..=100_000));
                ui.end_row();
                ui.label("Warm-up ratio (when steps is 0)");
                ui.add(egui::Slider::new(&mut o.warmup_ratio, 0.0..=0.5));
                ui.end_row();
                ui.label("Weight decay");
                ui.add(egui::DragValue::new(&mut o.weight_decay).speed(0.001).range(0.0..=1.0));
                ui.end_row();
                ui.label("Max gradient norm (0: off)");
                ui.add(egui::DragValue::new(&mut o.max_grad_norm).speed(0.01).range(0.0..=100.0));
                ui.end_row();
            });
        });
    }

    fn loop_ui(&mut self, ui: &mut egui::Ui) {
        let c = &mut self.settings.config;
        let mut output_pick = false;
        let device_before = c.device;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("Training loop").strong());
            egui::Grid::new("loop").num_columns(2).show(ui, |ui| {
                ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut c.epochs).range(1..=1000));
                ui.end_row();
                ui.label("Max steps");
                ui.horizontal(|ui| {
                    let mut limited = c.max_steps.is_some();
                    ui.checkbox(&mut limited, "limit");
                    if limited {
                        let mut steps = c.max_steps.unwrap_or(100);
                        ui.add(egui::DragValue::new(&mut steps).range(1..=1_000_000));
                        c.max_steps = Some(steps);
                    } else {
                        c.max_steps = None;
                    }
                });
                ui.end_row();
                ui.label("Batch size");
                ui.add(egui::Slider::new(&mut c.batch_size, 1..=64));
                ui.end_row();
                ui.label("Gradient accumulation");
                ui.add(egui::Slider::new(&mut c.grad_accumulation, 1..=64));
                ui.end_row();
                ui.label("Max sequence length");
                ui.add(egui::Slider::new(&mut c.data.max_seq_len, 16..=8192).logarithmic(true));
                ui.end_row();
                ui.label("Memory");
                ui.vertical(|ui| {
                    ui.checkbox(&mut c.gradient_checkpointing, "Gradient checkpointing (recompute each layer: less memory, slower)");
                    let mut f16 = c.precision == Precision::F16;
                    if ui.checkbox(&mut f16, F16_LABEL).changed() {
                        c.precision = if f16 { Precision::F16 } else { Precision::F32 };
                    }
                    // Only LoRA freezes the base, so only LoRA can pack it.
                    let lora = c.method.lora().is_some();
                    if !lora {
                        c.base_quant = BaseQuant::None;
                    }
                    ui.add_enabled_ui(lora, |ui| base_quant_ui(ui, &mut c.base_quant));
                    let native = self.model.summary.as_ref().map(|m| m.native_base_quant);
                    if let Some(note) = self.model.frozen_base_note.as_ref().filter(|_| lora && native == Some(c.base_quant)) {
                        ui.label(egui::RichText::new(format!("Frozen base {note}.")).weak());
                    }
                });
                ui.end_row();
                ui.label("Evaluate every (steps, 0: at the end)");
                ui.add(egui::DragValue::new(&mut c.eval_every).range(0..=1_000_000));
                ui.end_row();
                ui.label("Checkpoint every (steps)");
                ui.add(egui::DragValue::new(&mut c.save_every).range(0..=1_000_000));
                ui.end_row();
                ui.label("Seed");
                ui.add(egui::DragValue::new(&mut c.seed));
                ui.end_row();
                ui.label("Device");
                egui::ComboBox::from_id_salt("device").selected_text(c.device.to_string()).show_ui(ui, |ui| {
                    for d in [DeviceChoice::Auto, DeviceChoice::Wgpu, DeviceChoice::Cpu] {
                        ui.selectable_value(&mut c.device, d, d.to_string());
                    }
                });
                ui.end_row();
                ui.label("Run directory");
                ui.horizontal(|ui| {
                    let mut text = c.output_dir.display().to_string();
                    if ui.text_edit_singleline(&mut text).changed() {
                        c.output_dir = text.into();
                    }
                    output_pick = ui.button("Choose…").clicked();
                });
                ui.end_row();
            });
        });
        if self.settings.config.device != device_before {
            self.device_description = "detecting the GPU…".into();
            self.jobs.describe_device(self.settings.config.device);
        }
        if output_pick {
            self.jobs.pick(PickKind::OutputFolder);
        }
    }
}

/// How LoRA's frozen base is held: dense, or packed in int8 or 4-bit blocks.
fn base_quant_ui(ui: &mut egui::Ui, base_quant: &mut BaseQuant) {
    egui::ComboBox::from_label(FROZEN_BASE_LABEL).selected_text(base_quant_label(*base_quant)).show_ui(ui, |ui| {
        for q in BaseQuant::ALL {
            ui.selectable_value(base_quant, q, base_quant_label(q));
        }
    });
}

/// The frozen-base choice, by its accessibility label.
pub const FROZEN_BASE_LABEL: &str = "Frozen base (LoRA)";

fn base_quant_label(q: BaseQuant) -> &'static str {
    match q {
        BaseQuant::None => "dense (f32, or f16 with f16 matmuls)",
        BaseQuant::Int8 => "int8 blocks (about half of f16)",
        BaseQuant::Int4 => "4-bit blocks (0.29× of f16)",
    }
}

fn method_label(kind: &str) -> &'static str {
    match kind {
        "lora" => "LoRA",
        "full" => "Full fine-tuning",
        "top_layers" => "Top layers only",
        _ => "Named modules only",
    }
}

fn lora_ui(ui: &mut egui::Ui, lora: &mut LoraSettings) {
    ui.add(egui::Slider::new(&mut lora.rank, 1..=256).logarithmic(true).text("LoRA rank"));
    ui.add(egui::Slider::new(&mut lora.alpha, 1.0..=512.0).logarithmic(true).text("LoRA alpha"));
    ui.add(egui::Slider::new(&mut lora.dropout, 0.0..=0.5).text("LoRA dropout"));
    ui.checkbox(&mut lora.rslora, "rsLoRA (scale by alpha/√rank)");
    ui.horizontal_wrapped(|ui| {
        ui.label("Target modules");
        for target in LORA_TARGETS {
            let mut on = lora.target_modules.iter().any(|t| t == target);
            if ui.checkbox(&mut on, target).changed() {
                if on {
                    lora.target_modules.push(target.to_string());
                } else {
                    lora.target_modules.retain(|t| t != target);
                }
            }
        }
    });
}
