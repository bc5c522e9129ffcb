//! A TCP proxy a test can cut or freeze, to take Postgres or Redis away from hookgate without
//! touching the shared servers.
//!
//! Cutting closes sockets, as a crashed server does. Freezing keeps them open and forwards
//! nothing, as a hung server or a partitioned network does: only timeouts notice that.

use super::{TestEnv, redis_url, url_with_schema};
use sqlx::postgres::PgConnectOptions;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Whether connections opened from now on start frozen.
    frozen: watch::Sender<bool>,
    /// One switch per open connection, so open ones can be frozen apart from new ones.
    links: Arc<Mutex<Vec<watch::Sender<bool>>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
            frozen: watch::Sender::new(false),
            links: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let tasks = self.tasks.clone();
        let links = self.links.clone();
        let frozen = self.frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let link = watch::Sender::new(*frozen.borrow());
                let (up, down) = (link.subscribe(), link.subscribe());
                links.lock().unwrap().push(link);
                let conn = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(pump(in_read, out_write, up), pump(out_read, in_write, down));
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes every open connection and refuses new ones, as a crashed server would.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        self.links.lock().unwrap().clear();
    }

    /// Accepts connections again on the same address.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// Open connections and new ones stay open but forward nothing until [`Proxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
        self.set_open(true);
    }

    /// Every connection forwards again, including what was held while frozen.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
        self.set_open(false);
    }

    /// Only the connections open now go silent, for good (half-open); new ones work.
    pub fn freeze_open(&self) {
        self.set_open(true);
        self.links.lock().unwrap().clear();
    }

    fn set_open(&self, frozen: bool) {
        for link in self.links.lock().unwrap().iter() {
            link.send_replace(frozen);
        }
    }
}

/// Copies `from` to `to` while not frozen. Bytes read just before a freeze are held until the
/// thaw, so a frozen connection delivers nothing at all.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        thawed(&mut frozen).await;
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            () = until(&mut frozen, true) => continue,
        };
        thawed(&mut frozen).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn thawed(frozen: &mut watch::Receiver<bool>) {
    until(frozen, false).await;
}

/// Returns once the switch reads `state`; never, once the switch is gone while it reads
/// otherwise (`freeze_open` drops the switches of connections frozen for good).
async fn until(frozen: &mut watch::Receiver<bool>, state: bool) {
    let reached = frozen.wait_for(|f| *f == state).await.is_ok();
    if !reached {
        std::future::pending::<()>().await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The address of the Postgres server the test's schema lives on, for a proxy to point at.
pub fn postgres_addr(env: &TestEnv) -> SocketAddr {
    let options = PgConnectOptions::from_str(&env.database_url).unwrap();
    resolve(options.get_host(), options.get_port())
}

/// The test schema's Postgres URL, pointed at `proxy` instead of the server.
pub fn postgres_via(env: &TestEnv, proxy: &Proxy) -> String {
    let options = PgConnectOptions::from_str(&env.database_url).unwrap();
    let database = options.get_database().unwrap_or("postgres");
    let url = format!(
        "postgres://{}@{}/{database}",
        options.get_username(),
        proxy.addr
    );
    url_with_schema(&url, &env.schema)
}

/// The address of the shared Redis server, for a proxy to point at.
pub fn redis_addr() -> SocketAddr {
    let info = redis::Client::open(redis_url())
        .unwrap()
        .get_connection_info()
        .clone();
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => resolve(host, *port),
        other => panic!("tests need Redis over TCP, got {other:?}"),
    }
}

fn resolve(host: &str, port: u16) -> SocketAddr {
    (host, port).to_socket_addrs().unwrap().next().unwrap()
}
