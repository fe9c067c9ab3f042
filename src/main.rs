//! certgate's command line. Errors are reported here, once, with their full cause chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use certgate::config::{self, RuleAction, TrustStoreConfig};
use certgate::truststore::{loader, source::Sources};
use certgate::{app, demo, pki, tls, truststore};

/// jemalloc rather than glibc's malloc: a parked connection frees its hyper buffers, and
/// jemalloc hands whole freed pages back to the system within about a second, where glibc
/// keeps them in its arenas, scattered between live allocations.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: freed pages go back to the system after about a
/// second (default ten) and straight away rather than through MADV_FREE, which would leave them
/// counted in the resident set until the system runs short. `_RJEM_MALLOC_CONF` still overrides.
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: JemallocConf = JemallocConf(c"dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer jemalloc reads at start-up.
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a 'static C string literal that nothing writes to.
unsafe impl Sync for JemallocConf {}

#[derive(Parser)]
#[command(
    name = "certgate",
    version,
    about = "HTTPS reverse proxy with ALB-style mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy from a TOML config.
    Run {
        #[arg(short, long, default_value = "certgate.toml")]
        config: PathBuf,
    },
    /// Self-contained first run: demo PKI, echo backend, verify-mode listener.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8443")]
        bind: SocketAddr,
    },
    /// Parse and validate a config, load every trust store and certificate, print a summary.
    Check {
        #[arg(short, long, default_value = "certgate.toml")]
        config: PathBuf,
    },
    /// Trust store tools.
    Truststore {
        #[command(subcommand)]
        command: TruststoreCommand,
    },
    /// Offline: would this client chain be admitted? Exit 0 admitted, 1 refused, 2 bad input.
    Verify(VerifyArgs),
    /// Demo PKI tools.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum TruststoreCommand {
    /// Show CA subjects, CRL issuers, revoked-entry counts, nextUpdate and version.
    Describe {
        /// Describe the stores of this config...
        #[arg(short, long, conflicts_with = "ca_bundle")]
        config: Option<PathBuf>,
        /// ...only the store with this name.
        #[arg(requires = "config")]
        name: Option<String>,
        /// Or describe a bundle file directly.
        #[arg(long)]
        ca_bundle: Option<PathBuf>,
        /// CRL files (PEM or DER) to go with --ca-bundle.
        #[arg(long = "crl", requires = "ca_bundle")]
        crls: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Judge as this config's listener (`--listener`) would...
    #[arg(short, long, conflicts_with = "ca_bundle", requires = "listener")]
    config: Option<PathBuf>,
    #[arg(long, requires = "config")]
    listener: Option<String>,
    /// ...or as a verify listener on this CA bundle.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// CRL files (PEM or DER) to go with --ca-bundle.
    #[arg(long = "crl", requires = "ca_bundle")]
    crls: Vec<PathBuf>,
    /// The client's chain: PEM, leaf first, then its intermediates.
    #[arg(long)]
    cert: PathBuf,
    /// Judge at this RFC 3339 instant instead of now (CRLs as loaded).
    #[arg(long)]
    at: Option<String>,
    /// Judge as ignore_client_certificate_expiry = true would.
    #[arg(long)]
    ignore_expiry: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Write a demo PKI: root, intermediate, server cert, good/revoked/expired clients, CRL.
    Demo {
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    if let Command::Verify(args) = cli.command {
        return verify(args);
    }
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certgate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config } => {
            let cfg = config::load(&config)?;
            runtime()?
                .block_on(app::run(cfg))
                .with_context(|| format!("config file {}", config.display()))?;
            Ok(())
        }
        Command::Check { config } => check(&config),
        Command::Verify(_) => bail!("certgate verify is run by main"),
        Command::Demo { bind } => runtime()?.block_on(run_demo(bind)),
        Command::Truststore {
            command:
                TruststoreCommand::Describe {
                    config,
                    name,
                    ca_bundle,
                    crls,
                },
        } => describe(config, name, ca_bundle, crls),
        Command::Pki {
            command: PkiCommand::Demo { out },
        } => {
            let files = pki::write_demo(&out)?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

fn check(path: &std::path::Path) -> Result<()> {
    let cfg = config::load(path)?;
    let at = || format!("config file {}", path.display());
    let sources = Sources::new(cfg.s3.clone());
    let rt = runtime()?;
    let (stores, _) = rt
        .block_on(loader::load_all(&cfg, &sources))
        .with_context(at)?;
    let mut certs = Vec::new();
    for l in &cfg.listeners {
        let loaded = rt.block_on(tls::load_certificates(l, &sources));
        let loaded = std::sync::Arc::new(loaded.with_context(at)?);
        rt.block_on(certgate::listener::staple::first_staples(&loaded));
        tls::ListenerTls::build(l, &stores, loaded.clone()).with_context(at)?;
        certs.push(loaded);
    }
    let validators = runtime()?
        .block_on(certgate::app::load_validators(&cfg, &Default::default()))
        .with_context(at)?;
    for g in cfg.target_groups.values() {
        if g.targets.iter().any(|t| t.https) {
            certgate::upstream::client::tls_config(&g.name, &g.tls).with_context(at)?;
        }
    }
    println!("{}: OK", path.display());
    for (l, certs) in cfg.listeners.iter().zip(&certs) {
        let m = &l.mutual_authentication;
        let default = &l.routes.default_action;
        let shorthand = match default {
            RuleAction::Forward { target_group } => cfg
                .target_groups
                .get(target_group)
                .filter(|g| g.from_backend_shorthand),
            _ => None,
        };
        let to = match shorthand {
            Some(g) => g.targets[0].url.clone(),
            None => default.describe(),
        };
        println!(
            "  listener {}: {} -> {}, mode {}{}",
            l.name,
            l.bind,
            to,
            m.mode.as_str(),
            m.trust_store
                .as_deref()
                .map(|t| format!(", trust store {t}"))
                .unwrap_or_default()
        );
        for (i, r) in l.routes.rules.iter().enumerate() {
            let list = |what: &str, p: &Option<Vec<certgate::wildcard::Pattern>>| {
                p.as_ref().map_or(String::new(), |p| {
                    let p: Vec<&str> = p.iter().map(|p| p.as_str()).collect();
                    format!(" {what} [{}]", p.join(", "))
                })
            };
            println!(
                "    rule[{i}]: host {} path {}{}{} -> {}",
                r.host.as_ref().map_or("*", |h| h.as_str()),
                r.path.as_ref().map_or("*", |p| p.as_str()),
                list("client_identity", &r.client_identity),
                list("client_issuer", &r.client_issuer),
                r.action.describe()
            );
        }
        for line in tls::summary(l, certs) {
            println!("    {line}");
        }
    }
    for g in cfg
        .target_groups
        .values()
        .filter(|g| !g.from_backend_shorthand)
    {
        let hc = &g.health_check;
        let targets: Vec<&str> = g.targets.iter().map(|t| t.url.as_str()).collect();
        println!(
            "  target group {}: {} target(s) [{}], {}, health check {}",
            g.name,
            g.targets.len(),
            targets.join(", "),
            g.algorithm.as_str(),
            if hc.enabled {
                format!(
                    "GET {} every {}s (timeout {}s, healthy {}, unhealthy {}, matcher {})",
                    hc.path,
                    hc.interval.as_secs(),
                    hc.timeout.as_secs(),
                    hc.healthy_threshold,
                    hc.unhealthy_threshold,
                    hc.matcher
                )
            } else {
                "off".to_string()
            }
        );
        if g.targets.is_empty() {
            println!("    warning: no targets; requests routed here are answered 503");
        }
    }
    for v in validators.values() {
        println!(
            "  jwt validation {}: issuer {}, JWKS {}, key ids [{}]",
            v.cfg.name,
            v.cfg.issuer,
            v.cfg.jwks,
            v.key_ids().join(", ")
        );
    }
    for s in stores.values() {
        println!(
            "  trust store {}: {} CA(s), {} CRL(s), {} revoked entries, version {}",
            s.name,
            s.cas.len(),
            s.crl_infos.len(),
            s.revoked_entries(),
            s.version
        );
        for warning in truststore::describe::store_warnings(s) {
            println!("    warning: {warning}");
        }
    }
    Ok(())
}

fn describe(
    config: Option<PathBuf>,
    name: Option<String>,
    ca_bundle: Option<PathBuf>,
    crls: Vec<PathBuf>,
) -> Result<()> {
    if let Some(bundle) = ca_bundle {
        let cfg = TrustStoreConfig::from_files(bundle, crls);
        print!(
            "{}",
            truststore::describe::describe(
                &runtime()?.block_on(loader::load_one(&cfg, &Sources::new(Default::default())))?
            )
        );
        return Ok(());
    }
    let Some(path) = config else {
        bail!("give -c CONFIG [NAME] or --ca-bundle FILE [--crl FILE]...");
    };
    let cfg = config::load(&path)?;
    if let Some(n) = &name {
        if !cfg.trust_stores.contains_key(n) {
            bail!("{}: no [trust_store.{n}]", path.display());
        }
    }
    let rt = runtime()?;
    let sources = Sources::new(cfg.s3.clone());
    for (n, ts) in &cfg.trust_stores {
        if name.as_ref().is_none_or(|want| want == n) {
            let store = rt.block_on(loader::load_one(ts, &sources))?;
            print!("{}", truststore::describe::describe(&store));
        }
    }
    Ok(())
}

/// `certgate verify`: exit 0 when admitted, 1 when refused, 2 when it cannot judge.
fn verify(args: VerifyArgs) -> ExitCode {
    match judge(&args) {
        Ok(verdict) => {
            if args.json {
                println!("{}", verdict.json());
            } else {
                print!("{}", verdict.text());
            }
            ExitCode::from(if verdict.admitted() { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("certgate: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn judge(args: &VerifyArgs) -> Result<certgate::verify::Verdict> {
    use certgate::verify::{input, instant, Judge, VerifyError};
    let at = instant(args.at.as_deref())?;
    let chain = input::read_chain(&args.cert).map_err(|reason| VerifyError::Input {
        path: args.cert.clone(),
        reason,
    })?;
    let rt = runtime()?;
    let judge = match (&args.config, &args.listener, &args.ca_bundle) {
        (Some(c), Some(l), _) => rt.block_on(Judge::for_listener(c, l, args.ignore_expiry))?,
        (_, _, Some(b)) => rt.block_on(Judge::for_bundle(
            b.clone(),
            args.crls.clone(),
            args.ignore_expiry,
        ))?,
        _ => bail!("give -c CONFIG --listener NAME or --ca-bundle FILE [--crl FILE]..."),
    };
    Ok(rt.block_on(judge.verdict(&chain, at)))
}

async fn run_demo(bind: SocketAddr) -> Result<()> {
    let files = demo::prepare().context("cannot prepare the demo's files")?;
    let (dir, access_log) = (&files.pki, &files.access_log);
    let backend = demo::echo_backend(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot start the echo backend")?;
    let cfg = demo::config(dir, bind, backend, access_log)?;
    let server = match app::Server::start(cfg).await {
        Ok(s) => s,
        Err(e @ app::StartError::Bind { .. }) => {
            bail!("{e} (is another certgate demo running? try --bind 127.0.0.1:9443)")
        }
        Err(e) => return Err(e.into()),
    };
    let addr = server.local_addr("demo").unwrap_or(bind);
    eprintln!("{}", demo::instructions(dir, addr, backend, access_log));
    app::serve_until_signal(server, std::time::Duration::from_secs(5)).await?;
    drop(files);
    Ok(())
}
