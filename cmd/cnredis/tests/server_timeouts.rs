//! The instance manager's connection to its server against a real `valkey-server`: a command the server
//! answers after a second succeeds (a fork, a slow command, a `WAIT` are not a dead server), one it
//! answers only after six seconds times out at five with a clear error.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cnredis_instance::server::{COMMAND_TIMEOUT, ServerClient, ServerError};
use support::engine_dir;

struct Server {
    child: Child,
    socket: std::path::PathBuf,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

async fn start_server(name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("cnredis-timeouts-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("server.sock");
    let child = Command::new(engine_dir("valkey-9.1").join("valkey-server"))
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        socket: socket.clone(),
        _dir: dir,
    };
    support::eventually("the server answers", Duration::from_secs(10), || async {
        ServerClient::new(socket.clone(), None)
            .info()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    server
}

/// `DEBUG SLEEP seconds` on a connection of its own, in the background.
fn stall(socket: &std::path::Path, seconds: u64) -> tokio::task::JoinHandle<()> {
    let client = ServerClient::new(socket.to_path_buf(), None);
    tokio::spawn(async move {
        let mut sleep = redis::cmd("DEBUG");
        sleep.arg("SLEEP").arg(seconds);
        let _ = client.query::<()>(&sleep).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_after_a_second_is_not_taken_for_a_dead_one() {
    let server = start_server("1s").await;
    let client = ServerClient::new(server.socket.clone(), None);
    client.info().await.unwrap();
    let stalled = stall(&server.socket, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    let answer = client.info().await;
    let took = asked.elapsed();
    assert!(
        answer.is_ok(),
        "INFO during a 1 s stall: {answer:?} after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(600),
        "the stall was not felt: {took:?}"
    );
    stalled.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_for_six_seconds_times_out_at_five() {
    let server = start_server("6s").await;
    let client = ServerClient::new(server.socket.clone(), None);
    client.info().await.unwrap();
    let stalled = stall(&server.socket, 6);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    let answer = client.info().await;
    let took = asked.elapsed();
    match answer {
        Err(error @ ServerError::Timeout(_)) => {
            assert_eq!(
                error.to_string(),
                format!("server did not answer within {COMMAND_TIMEOUT:?}")
            );
        }
        other => panic!("expected a timeout, got {other:?} after {took:?}"),
    }
    assert!(
        took >= COMMAND_TIMEOUT - Duration::from_millis(200)
            && took < COMMAND_TIMEOUT + Duration::from_secs(1),
        "timed out after {took:?}"
    );
    stalled.await.unwrap();
    // The connection comes back by itself once the server answers again.
    client.info().await.unwrap();
}
