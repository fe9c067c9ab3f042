//! A stand-alone echo backend for the benchmark scripts: the demo's backend (HTTP/1.1 and h2c
//! prior knowledge on one port, a JSON echo of each request) on `--bind`.

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bind: std::net::SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = certgate::demo::echo_backend(Args::parse().bind).await?;
    eprintln!("echo backend on http://{addr} (HTTP/1.1 and h2c)");
    std::future::pending::<()>().await;
    Ok(())
}
