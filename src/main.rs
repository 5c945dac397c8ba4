//! The `govlink` binary: the command line of `govlink::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    govlink::cli::main().await
}
