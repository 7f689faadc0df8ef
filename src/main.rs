//! The `slurmbox` binary: parse arguments, run one command, turn errors into a
//! message with a hint and an exit code (2 for a bad spec or usage, 1 otherwise: see
//! [`slurmbox::exit`]).

use std::process::ExitCode;

use clap::Parser;
use slurmbox::cli::{Cli, Command};
use slurmbox::commands::{self, Context};
use slurmbox::progress::Progress;
use slurmbox::settings::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLURMBOX_LOG").unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ctx = Context { progress: Progress::new(cli.quiet), settings: Settings::from_env() };
    let runtime = tokio::runtime::Runtime::new().expect("start the async runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => commands::up::run(&ctx, args).await,
            Command::Down(args) => commands::down::run(&ctx, args).await,
            Command::Exec(args) => commands::exec::run(&ctx, args).await,
            Command::Shell(args) => commands::exec::shell(&ctx, args).await,
            Command::Status(args) => commands::status::run(&ctx, args).await,
            Command::Doctor(args) => commands::doctor::run(&ctx, args).await,
            Command::Logs(args) => commands::logs::run(&ctx, args).await,
            Command::Verify(args) => commands::verify::run(&ctx, args).await,
            Command::List(args) => commands::list::run(&ctx, args).await,
            Command::Host(cmd) => commands::host::run(&ctx, cmd).await,
            Command::User(cmd) => commands::user::run(&ctx, cmd).await,
            Command::Backup(args) => commands::backup::run(&ctx, args).await,
            Command::Restore(args) => commands::restore::run(&ctx, args).await,
            Command::Token(args) => commands::token::run(&ctx, args).await,
            Command::WebLogin(args) => commands::token::web_login(&ctx, args).await,
            Command::SshConfig(args) => commands::ssh_config::run(&ctx, args).await,
            Command::Image(cmd) => commands::image::run(&ctx, cmd).await,
            Command::Config(cmd) => commands::config::run(&ctx, cmd).await,
        }
    });
    // A command may leave a blocking read of stdin behind (exec); don't wait for it.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(slurmbox::exit::code(&report))
        }
    }
}
