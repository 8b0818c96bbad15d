//! `wgtune-gui`: the desktop app alone, for desktop menus and shortcuts. On Windows it is a GUI
//! program, so starting it opens no console window; `wgtune` stays a console program, so that its
//! commands print in the terminal they run in. Built with the `gui-launcher` feature (the Windows
//! release).
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    match wgtune::gui::run_app() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // There is no console to print to: the error is said in a dialog.
            rfd::MessageDialog::new().set_level(rfd::MessageLevel::Error).set_title("wgtune").set_description(format!("{e:#}")).show();
            ExitCode::FAILURE
        }
    }
}
