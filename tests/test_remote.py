"""Remote policies over openpi's websocket protocol: codec, our client and server, the real
openpi-client against `vla-bench serve`, and bad input. Loopback only; every server is shut down."""

from __future__ import annotations

import json
import socket
import urllib.request

import numpy as np
import pytest

from vla_bench.cli import main
from vla_bench.config import EvalConfig
from vla_bench.evaluate import evaluate
from vla_bench.policies import PolicyContext, make_policy
from vla_bench.remote import codec
from vla_bench.remote.options import RemoteOptions, redact_argv
from vla_bench.policies.base import PolicyOutput
from vla_bench.remote.presets import PRESETS
from vla_bench.remote.server import PolicyServer
from vla_bench.specs import protocols
from conftest import read_jsonl
from remote_helpers import REPO, policy_server_thread, scripted_server, serve_subprocess

TEACHER = REPO / "checkpoints" / "tiny-teacher"
PRESET = PRESETS.get("openpi-libero")
OPENPI_REQUEST_KEYS = ("observation/image", "observation/wrist_image", "observation/state", "prompt")


def libero_request(rng: np.random.Generator) -> dict:
    """A request as openpi's LIBERO client builds it."""
    return {
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.normal(size=8),
        "prompt": "put the bowl on the plate",
    }


def served(policy: str, protocol: str = "openvla", checkpoint=None, **kwargs) -> PolicyServer:
    from vla_bench.commands.serve import ServeConfig, server_metadata

    proto = protocols().get(protocol)
    built = make_policy(policy, PolicyContext(protocol=proto, checkpoint=checkpoint))
    config = ServeConfig(policy=policy, checkpoint=None if checkpoint is None else str(checkpoint), protocol=protocol)
    metadata = server_metadata(config, built, PRESET, built.image_size or proto.model_image_size)
    return PolicyServer(built, PRESET, metadata, **kwargs)


def remote_config(tmp_path, server: str, name: str = "run", **kwargs) -> EvalConfig:
    base = dict(suite="libero_object", tasks="0", trials=2, max_steps=12, env="fake", workers=0, progress=False,
                output=str(tmp_path / name), policy="remote", remote=RemoteOptions(server=server, connect_timeout=5,
                                                                                    reconnect_timeout=3))
    base.update(kwargs)
    return EvalConfig(**base)


def records(run_dir) -> dict:
    return {(r["suite"], r["task_id"], r["init_idx"]): r for r in read_jsonl(run_dir / "episodes.jsonl")}


# -- codec -----------------------------------------------------------------------------------------


def test_codec_interoperates_with_openpi_msgpack_numpy():
    from openpi_client import msgpack_numpy

    message = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "s": np.float32(2.5), "t": "x", "n": [1, {"b": np.uint8(3)}]}
    for decoded in (msgpack_numpy.unpackb(codec.pack(message)), codec.unpack(msgpack_numpy.packb(message))):
        assert decoded["a"].dtype == np.float32 and np.array_equal(decoded["a"], message["a"])
        assert decoded["s"] == 2.5 and isinstance(decoded["s"], np.float32)
        assert decoded["n"][1]["b"] == 3 and decoded["t"] == "x"
    with pytest.raises(TypeError, match="dtype object"):
        codec.pack({"x": np.array([object()])})
    with pytest.raises(ValueError, match="not a msgpack"):
        codec.unpack(b"\xc1")


def test_api_key_is_redacted():
    assert redact_argv(["vla-bench", "--api-key", "s3cret", "--api-key=s3cret", "--x"]) == [
        "vla-bench", "--api-key", "***", "--api-key=***", "--x"]


# -- the real openpi client against `vla-bench serve` ----------------------------------------------


def test_openpi_client_against_vla_bench_serve(tmp_path):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    rng = np.random.default_rng(0)
    recorded = rng.uniform(-1, 1, size=(5, 7))
    np.save(tmp_path / "actions.npy", recorded)
    with serve_subprocess("--policy", "replay", "--checkpoint", str(tmp_path / "actions.npy")) as (url, _):
        client = WebsocketClientPolicy(url)
        meta = client.get_server_metadata()
        assert meta["server"] == "vla_bench" and meta["policy"] == "replay" and meta["protocol"] == "openvla"
        assert len(meta["checkpoint"]["sha256"]) == 64 and meta["image_size"] == 224
        replies = [client.infer(libero_request(rng)) for _ in range(3)]
        for step, reply in enumerate(replies):
            np.testing.assert_array_equal(reply["actions"], recorded[step : step + 1])
            assert "infer_ms" in reply["server_timing"] and "infer_ms" in reply["policy_timing"]
        with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=5) as response:
            assert response.status == 200

        # unknown keys: a text error frame naming them (the client raises it), then close 1011
        bad = WebsocketClientPolicy(url)
        with pytest.raises(RuntimeError, match=r"unknown keys \['observation/joints'\]"):
            bad.infer({**libero_request(rng), "observation/joints": np.zeros(7)})
        assert bad._ws.close_code == 1011 if bad._ws.close_code is not None else True
        # the server keeps serving the others
        assert client.infer(libero_request(rng))["actions"].shape == (1, 7)


# -- our client against our server -----------------------------------------------------------------


def test_remote_gives_the_same_records_and_actions_as_in_process(tmp_path):
    """The tiny teacher under vita-vla (7-frame history, temporal ensembling: per-episode state on
    the server) gives the same records and actions remotely as in process."""
    logs: dict[str, dict] = {"local": {}, "remote": {}}

    def recorder(name):
        def wrap(policy):
            infer = policy.infer

            def logged(observations):
                output = infer(observations)
                actions = output.actions if isinstance(output, PolicyOutput) else output
                for obs, action in zip(observations, actions):
                    logs[name][(obs.episode, obs.step)] = np.array(action)
                return output

            policy.infer = logged
            return policy

        return wrap

    common = dict(protocol="vita-vla", tasks="0,1", trials=2, max_steps=10)
    local = evaluate(remote_config(tmp_path, "", "local", policy="seer", checkpoint=str(TEACHER),
                                   remote=RemoteOptions(), **common), wrap_policy=recorder("local"))
    server = served("seer", "vita-vla", TEACHER, max_wait_s=0.05)
    assert len(server.metadata["checkpoint"]["sha256"]) == 64 and server.metadata["expected_protocol"]["name"] == "vita-vla"
    with policy_server_thread(server) as url:
        remote = evaluate(remote_config(tmp_path, url, "remote", workers=2, **common), wrap_policy=recorder("remote"))
    assert max(server.batches) == 2  # the two workers' episodes are served by one infer call
    a, b = records(local.run_dir), records(remote.run_dir)
    assert a.keys() == b.keys() and len(a) == 4
    for key in a:
        assert (a[key]["success"], a[key]["steps"], a[key]["status"]) == (b[key]["success"], b[key]["steps"], b[key]["status"])
    assert logs["local"].keys() == logs["remote"].keys() and len(logs["local"]) == 40
    for key, action in logs["local"].items():
        np.testing.assert_allclose(logs["remote"][key], action, atol=1e-5)
    run = json.loads((remote.run_dir / "run.json").read_text())
    model = run["policy"]["model"]
    assert model["server_metadata"]["policy"] == "seer" and model["identity"]["replan_steps"] == 5
    assert run["image_size"] == 128  # as rendered; the checkpoint transform resizes


def test_chunks_are_executed_per_replan_and_render_only_query_steps(tmp_path):
    """A 10-action chunk with --replan-steps 4: one query per 4 steps; envs render only then."""
    seen = []

    def answer(conn, n, request):
        seen.append(request["observation/image"].shape)
        return {"actions": np.tile(np.array([0.1, 0, 0, 0, 0, 0, -1.0]), (10, 1))}

    with scripted_server(answer) as url:
        config = remote_config(tmp_path, url, trials=1, max_steps=10)
        config = EvalConfig(**{**config.__dict__, "remote": RemoteOptions(server=url, replan_steps=4, model_name="m")})
        result = evaluate(config)
    assert len(seen) == 3 and seen[0] == (224, 224, 3)  # steps 0, 4, 8; 256 rendered, resized with padding
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["policy"]["model"]["model_name"] == "m" and run["image_size"] == 256


def test_remote_policy_pickles_for_executors_that_ship_it(tmp_path):
    import pickle

    from vla_bench.episodes import Episode
    from vla_bench.envs.base import Observation
    from vla_bench.policies.remote import RemotePolicy

    reply = {"actions": np.tile(np.array([0.5, 0, 0, 0, 0, 0, -1.0]), (2, 1))}
    with scripted_server(lambda c, n, r: reply) as url:
        policy = RemotePolicy(RemoteOptions(server=url), protocols().get("openvla"))
        copy = pickle.loads(pickle.dumps(policy))
        copy.start_episode(Episode("libero_object", 0, 0, 0, 10))
        images = {c: np.zeros((256, 256, 3), np.uint8) for c in ("agentview", "robot0_eye_in_hand")}
        obs = Observation(images=images, state=np.zeros(8), instruction="x", episode="libero_object/0/0")
        output = copy.infer([obs])
        assert output.actions[0, 0] == 0.5 and output.reads_next == [False]
        copy.close(), policy.close()


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, message",
    [
        ({"action": np.zeros((10, 7))}, "reply has no 'actions' (keys: ['action'])"),
        ({"actions": np.zeros((10, 8))}, "reply 'actions' has shape (10, 8); expected (H, 7)"),
        ({"actions": np.full((10, 7), np.nan)}, "reply 'actions' of shape (10, 7) holds NaN or inf"),
        ("Traceback (most recent call last):\n  ...\nValueError: model exploded", "server error: ValueError: model exploded"),
    ],
)
def test_bad_replies_make_the_episode_an_error(tmp_path, reply, message):
    with scripted_server(lambda c, n, r: reply) as url:
        result = evaluate(remote_config(tmp_path, url, trials=1))
    (record,) = records(result.run_dir).values()
    assert record["status"] == "error" and message in record["error"] and not record["success"]


def test_a_dropped_connection_is_retried_after_reconnecting(tmp_path):
    def answer(conn, n, request):
        if conn == 1 and n == 3:  # connection 0 is the start-up probe; the first episode's drops
            return None
        return {"actions": np.tile(np.array([0, 0, 0, 0, 0, 0, -1.0]), (1, 1))}

    with scripted_server(answer) as url:
        result = evaluate(remote_config(tmp_path, url, trials=1, workers=1, max_steps=8))
    (record,) = records(result.run_dir).values()
    assert record["status"] == "ok" and record["attempts"] == 2 and record["steps"] == 8


def test_unreachable_or_non_websocket_server_fails_before_the_run(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    args = ["eval", "--suite", "libero_object", "--tasks", "0", "--trials", "1", "--env", "fake", "--no-progress",
            "--policy", "remote", "--connect-timeout", "3"]
    assert main([*args, "--server", f"ws://127.0.0.1:{port}", "--output", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vla-bench: error: cannot connect to policy server ws://127.0.0.1:{port}") and "\n" not in err
    assert not (tmp_path / "a").exists()

    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert main([*args, "--server", f"ws://127.0.0.1:{httpd.server_port}", "--output", str(tmp_path / "b")]) == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capsys.readouterr().err.strip()
    assert "cannot connect to policy server" in err and "websocket policy server?" in err and "\n" not in err
    assert main([*args[:-2], "--server", "http://x", "--output", str(tmp_path / "c")]) == 2
    assert main(["eval", "--suite", "libero_object", "--policy", "zero", "--server", "ws://x", "--env", "fake"]) == 2
    assert "--server: only for --policy remote" in capsys.readouterr().err


def test_unknown_request_keys_get_an_error_frame_and_others_are_served():
    from vla_bench.remote.client import Connection, RemoteError

    rng = np.random.default_rng(1)
    with policy_server_thread(served("zero")) as url:
        good, bad = Connection(url), Connection(url)
        with pytest.raises(RemoteError, match=r"unknown keys \['extra'\]"):
            bad.infer({**libero_request(rng), "extra": 1}, timeout_s=5)
        with pytest.raises(RemoteError, match=r"missing keys \['prompt'\]"):
            Connection(url).infer({k: v for k, v in libero_request(rng).items() if k != "prompt"}, timeout_s=5)
        assert good.infer(libero_request(rng), timeout_s=5)["actions"].shape == (1, 7)
        good.close()


def test_serve_refuses_a_port_in_use(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["serve", "--policy", "zero", "--port", str(port)]) == 2
    assert f"--port {port} is in use" in capsys.readouterr().err


def test_server_episodes_start_per_connection_or_on_episode_start(tmp_path):
    """The protocol has no reset: a new connection, or {"__ctrl__": "episode_start"}, starts an episode
    (the replay policy's step counter restarts)."""
    from vla_bench.remote.client import Connection

    recorded = np.random.default_rng(2).uniform(-1, 1, size=(6, 7))
    np.save(tmp_path / "a.npy", recorded)
    rng = np.random.default_rng(3)
    with policy_server_thread(served("replay", checkpoint=tmp_path / "a.npy")) as url:
        first = Connection(url)
        got = [first.infer(libero_request(rng), 5)["actions"][0] for _ in range(3)]
        np.testing.assert_array_equal(got, recorded[:3])
        assert first.infer({"__ctrl__": "episode_start"}, 5) == {"__ack__": "episode_start"}
        np.testing.assert_array_equal(first.infer(libero_request(rng), 5)["actions"][0], recorded[0])
        second = Connection(url)
        np.testing.assert_array_equal(second.infer(libero_request(rng), 5)["actions"][0], recorded[0])
        np.testing.assert_array_equal(first.infer(libero_request(rng), 5)["actions"][0], recorded[1])
        first.close(), second.close()


def test_resume_identity_is_the_servers_metadata_and_model_name(tmp_path):
    from vla_bench.errors import VlaBenchError

    ok = {"actions": np.tile(np.array([0, 0, 0, 0, 0, 0, -1.0]), (5, 1))}
    with scripted_server(lambda c, n, r: ok, metadata={"model": "a"}) as url:
        first = remote_config(tmp_path, url, trials=2, max_steps=4)
        first = EvalConfig(**{**first.__dict__, "remote": RemoteOptions(server=url, model_name="pi05 30k")})
        evaluate(first)
        more = EvalConfig(**{**first.__dict__, "resume": True})
        with pytest.raises(VlaBenchError, match="model_identity"):
            evaluate(EvalConfig(**{**more.__dict__, "remote": RemoteOptions(server=url, model_name="pi05 20k")}))
    with scripted_server(lambda c, n, r: ok, metadata={"model": "b"}) as url:
        with pytest.raises(VlaBenchError, match="model_identity"):
            evaluate(EvalConfig(**{**more.__dict__, "remote": RemoteOptions(server=url, model_name="pi05 30k")}))
    with scripted_server(lambda c, n, r: ok, metadata={"model": "a"}) as other_port:
        result = evaluate(EvalConfig(**{**more.__dict__, "remote": RemoteOptions(server=other_port, model_name="pi05 30k")}))
    assert len(records(result.run_dir)) == 2
