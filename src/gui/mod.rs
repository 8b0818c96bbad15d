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
mod welcome;

pub use app::{Tab, WgtuneApp};
pub use evaluate_panel::Evaluation;
pub use picker::{DialogPicker, FilePicker, PickKind};
pub use settings::{Settings, workspace};

/// The app's reverse-DNS id: the desktop entry's and the icon's name, and the window's Wayland
/// app id, so that a desktop matches the open window to its menu entry and icon.
pub const APP_ID: &str = "io.github.wgtune.wgtune";

/// The window icon (the 256-pixel rendering of `packaging/icons/io.github.wgtune.wgtune.svg`).
const ICON_PNG: &[u8] = include_bytes!("../../packaging/icons/hicolor/256x256/apps/io.github.wgtune.wgtune.png");

/// Opens the app window (wgpu renderer, or glow with the `glow` feature).
pub fn run_app() -> anyhow::Result<()> {
    let mut viewport = eframe::egui::ViewportBuilder::default()
        .with_title("wgtune")
        .with_app_id(APP_ID)
        .with_inner_size([1280.0, 820.0])
        .with_min_inner_size([900.0, 600.0]);
    if let Ok(icon) = eframe::icon_data::from_png_bytes(ICON_PNG) {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        renderer: renderer(),
        // Where versions before the app id kept the settings (eframe derives the folder from the
        // app id otherwise), so that nobody's remembered settings are lost.
        persistence_path: eframe::storage_dir("wgtune").map(|dir| dir.join("app.ron")),
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
