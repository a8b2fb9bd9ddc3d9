//! The operator's own fence of a primary's server through its Redis port (`cluster::fence`), against a
//! real `valkey-server` with a password: after it, writes are refused and reads answered, the clients
//! that were connected are disconnected; a wrong password or a server that does not answer is an error
//! within the bound, never a fence assumed.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cnredis_controller::cluster::fence::{SERVER_TIMEOUT, fence_server};
use support::engine_dir;

const PASSWORD: &str = "fence-test-password";

struct Server {
    child: Child,
    address: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("cnredis-fence-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let child = Command::new(engine_dir("valkey-9.1").join("valkey-server"))
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--port", &address.port().to_string(), "--requirepass", PASSWORD])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, address, dir };
    support::eventually("the server answers", Duration::from_secs(10), || async {
        connect(address, PASSWORD)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    server
}

async fn connect(
    address: SocketAddr,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let url = format!("redis://:{password}@{}:{}/", address.ip(), address.port());
    redis::Client::open(url)?.get_multiplexed_async_connection().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_fences_a_running_server_through_its_redis_port() {
    let server = start_server("fence").await;
    let mut client = connect(server.address, PASSWORD).await.unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut client)
        .await
        .expect("writes are taken before the fence");

    fence_server(server.address, Some(PASSWORD.to_string()))
        .await
        .expect("the fence");

    // The client that was connected is gone: its next command fails (the library does not retry it).
    let after = redis::cmd("GET")
        .arg("k")
        .query_async::<String>(&mut client)
        .await;
    assert!(
        after.is_err(),
        "a client connected before the fence kept its connection: {after:?}"
    );
    let mut fresh = connect(server.address, PASSWORD).await.unwrap();
    let write = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .query_async::<()>(&mut fresh)
        .await;
    assert_eq!(
        write.as_ref().err().and_then(|e| e.code()),
        Some("NOREPLICAS"),
        "a write after the fence: {write:?}"
    );
    let read: String = redis::cmd("GET").arg("k").query_async(&mut fresh).await.unwrap();
    assert_eq!(read, "v", "reads go on, and the refused write changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_error_and_leaves_writes_open() {
    let server = start_server("wrong-password").await;
    let error = fence_server(server.address, Some("not-the-password".to_string()))
        .await
        .expect_err("a fence with the wrong password");
    assert!(
        error.to_string().contains("WRONGPASS") || error.to_string().to_lowercase().contains("auth"),
        "{error}"
    );
    let mut client = connect(server.address, PASSWORD).await.unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut client)
        .await
        .expect("still writable: nothing was fenced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_is_an_error_within_the_bound() {
    // A listener that accepts connections but never answers, like a frozen server.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = silent.local_addr().unwrap();
    let started = Instant::now();
    let result = fence_server(address, Some(PASSWORD.to_string())).await;
    let took = started.elapsed();
    assert!(result.is_err(), "a silent server was taken for fenced");
    assert!(
        took < 3 * SERVER_TIMEOUT + Duration::from_millis(500),
        "gave up after {took:?}"
    );
}
