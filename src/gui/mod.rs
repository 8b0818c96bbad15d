//! The desktop app: a thin front on the engine. It keeps UI state only; the engine runs on
//! background threads and talks back through channels (training events, job replies).

mod app;
mod dataset_panel;
mod evaluate_panel;
mod export_panel;
mod hyperparameters_panel;
mod jobs;
mod model_panel;
mod picker;
mod playground;
mod playground_panel;
mod runs_panel;
mod settings;
mod training_panel;

pub use app::{Tab, WgtuneApp};
pub use evaluate_panel::Evaluation;
pub use picker::{DialogPicker, FilePicker, PickKind};
pub use settings::Settings;

/// Opens the app window (wgpu renderer, or glow with the `glow` feature).
pub fn run_app() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("wgtune")
            .with_inner_size([1280.0, 820.0])
            .with_min_inner_size([900.0, 600.0]),
        renderer: renderer(),
        ..Default::default()
    };
    eframe::run_native("wgtune", options, Box::new(|cc| Ok(Box::new(WgtuneApp::new(cc, Box::new(DialogPicker))))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

#[cfg(feature = "glow")]
fn renderer() -> eframe::Renderer {
    eframe::Renderer::Glow
}

#[cfg(not(feature = "glow"))]
fn renderer() -> eframe::Renderer {
    eframe::Renderer::Wgpu
}
