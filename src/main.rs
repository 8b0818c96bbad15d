//! The `wgtune` command: the desktop app with no arguments, the engine's subcommands otherwise.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
