use clap::Parser;

fn main() {
    let cli = pdns_ha::cli::Cli::parse();
    // The long-running processes log what they do; one-shot commands only
    // warnings (their results are their output). RUST_LOG overrides.
    let level = match cli.command {
        pdns_ha::cli::Command::Pipe { .. } | pdns_ha::cli::Command::Collect => "info",
        _ => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .target(env_logger::Target::Stderr)
        .init();
    match pdns_ha::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
