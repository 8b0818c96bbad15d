//! The first screen, before any model is chosen: the three ways in, and what this machine's
//! device can train, so a new user knows where to start.

use eframe::egui;

use super::app::WgtuneApp;
use super::picker::PickKind;
use crate::inspect::{StepPlan, estimate_memory, human_bytes};
use crate::method::Method;
use crate::model::{BaseQuant, Precision};

/// The model sizes a laptop is chosen for, as `wgtune bench` shapes them.
const SIZES: [(&str, &str); 3] = [("llama-1b", "1B"), ("llama-3b", "3B"), ("llama-8b", "8B")];

impl WgtuneApp {
    pub fn welcome_ui(&mut self, ui: &mut egui::Ui) {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.heading("Start here");
            ui.label("Fine-tune a language model on this machine in three steps: a model, a dataset, Start training.");
            ui.horizontal(|ui| {
                if ui.button("Open a model folder…").on_hover_text("A Hugging Face folder: config.json, safetensors, tokenizer").clicked()
                {
                    self.jobs.pick(PickKind::ModelFolder);
                }
                if ui.button("Open a GGUF file…").on_hover_text("From llama.cpp, LM Studio or Ollama").clicked() {
                    self.jobs.pick(PickKind::ModelFile);
                }
                ui.label("or type a Hugging Face id (owner/name) below, or");
                if ui
                    .button("Try the demo")
                    .on_hover_text("The bundled chat model and questions about invented countries: nothing to download")
                    .clicked()
                {
                    self.start_demo();
                }
            });
            ui.add_space(4.0);
            ui.label(self.device_line());
        });
    }

    /// The bundled model with the bundled questions, at the starting point sized for them.
    fn start_demo(&mut self) {
        match Self::bundled() {
            Ok(bundle) => {
                self.use_demo_data(bundle.questions());
                self.select_model(bundle.demo_model());
            }
            Err(e) => self.model.error = Some(e),
        }
    }

    /// The device, and the LoRA runs its memory holds: rank 16, 4 sequences of 512 tokens, the
    /// frozen base in 4-bit blocks, gradient checkpointing, for Llama 3 shapes of 1, 3 and 8
    /// billion parameters.
    fn device_line(&self) -> String {
        if self.device_description.starts_with("detecting") {
            return format!("Device: {}", self.device_description);
        }
        let Some(memory) = self.device_memory else {
            return format!("Device: {}.", self.device_description);
        };
        let plan = StepPlan { base_quant: BaseQuant::Int4, ..StepPlan::new(true, self.device_on_wgpu, true, Precision::F16) };
        let sizes: Vec<String> = SIZES
            .iter()
            .filter_map(|(shape, name)| {
                let config = crate::bench::shape_config(shape).ok()?;
                let need = estimate_memory(&config, &Method::default(), 4, 512, plan).total;
                let verdict = if need <= memory { "fits" } else { "too large" };
                Some(format!("{name} {} ({verdict})", human_bytes(need)))
            })
            .collect();
        format!(
            "Device: {}, {} of memory. LoRA on a 4-bit base (rank 16, 4 × 512 tokens, gradient checkpointing) needs: {}.",
            self.device_description,
            human_bytes(memory),
            sizes.join(", ")
        )
    }
}
