"""Model artifacts are verified as a whole: every tampering case ends in ONE clear refusal.

The artifact is built here (a small real ONNX graph, a real background, a manifest written and sealed by
``write_manifest``, through ``minerlens_training.toy.onnx_artifact``), then tampered with the way an attacker
or an unlucky operator would: edit a manifest field, swap/flip/remove/add a file (with and without updating
its hash, with and without re-sealing), break the seal or the signature, sign with the wrong key. Each case is
loaded through what the scorer (``OnnxModel``) and the explainer/featurizer (``VerifiedManifest``) use.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from minerlens_core.cli import app
from minerlens_core.errors import ArtifactError, ArtifactIntegrityError
from minerlens_core.features import FeatureSpec
from minerlens_core.models import (
    BACKGROUND_FILE,
    DIGEST_FILE,
    MANIFEST,
    ONNX_FILE,
    SIGNATURE_FILE,
    ArtifactSignatureError,
    ArtifactTrustError,
    Background,
    Trust,
    VerifiedManifest,
    seal_artifact,
    sign_artifact,
)
from minerlens_core.models.onnx_model import OnnxModel
from minerlens_core.models.seal import write_seal
from minerlens_core.models.signing import PUBKEY_ENV, generate_key
from minerlens_training.toy import onnx_artifact
from onnx import TensorProto, helper
from typer.testing import CliRunner

SPEC = FeatureSpec.default()


def _onnx_bytes(output: str = "probabilities") -> bytes:
    """features (n, dim) -> probabilities (n, 2): p = sigmoid(mean(x)), [1 - p, p]."""
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, SPEC.dim])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 2])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [
        helper.make_node("ReduceMean", ["features"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["m"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], [output], axis=1),
    ]
    graph = helper.make_graph(nodes, "toy", [x], [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _build(out: Path) -> Path:
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    X, y = rng.random((40, SPEC.dim)), np.array([0, 1] * 20)
    return onnx_artifact(
        out,
        _onnx_bytes(),
        spec=SPEC,
        model_name="minerlens-toy",
        kind="test",
        detector="toy",
        threshold=0.5,
        background=Background.from_windows(SPEC.names, X, y),
        libraries={"onnx": onnx.__version__},
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("artifact") / "toy")


@pytest.fixture
def artifact(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "toy"))


@pytest.fixture
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(private key, its public key, another public key)."""
    d = tmp_path_factory.mktemp("keys")
    private, public, _ = generate_key(d / "signer")
    _, other, _ = generate_key(d / "other")
    return private, public, other


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBKEY_ENV, raising=False)


def _edit(artifact: Path, change: Callable[[dict[str, object]], None], *, reseal: bool = False) -> None:
    doc = json.loads((artifact / MANIFEST).read_text())
    change(doc)
    raw = json.dumps(doc, indent=2).encode()
    (artifact / MANIFEST).write_bytes(raw)
    if reseal:
        write_seal(artifact, raw)


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    path.write_bytes(bytes(data))


def _refusal(artifact: Path, trust: Trust | None = None) -> ArtifactError:
    """The one error both loaders give; they must agree."""
    with pytest.raises(ArtifactError) as verified:
        VerifiedManifest(artifact, trust=trust)
    with pytest.raises(ArtifactError) as scored:
        OnnxModel(artifact, trust=trust)
    assert type(scored.value) is type(verified.value)
    assert str(scored.value) == str(verified.value)
    return verified.value


def _refused_by_onnx(artifact: Path) -> ArtifactError:
    VerifiedManifest(artifact)  # the manifest and the hashes are consistent...
    with pytest.raises(ArtifactError) as exc:
        OnnxModel(artifact)  # ...but the model cannot be served
    return exc.value


def test_a_written_artifact_is_sealed_and_loads(artifact: Path) -> None:
    v = VerifiedManifest(artifact)
    assert (artifact / DIGEST_FILE).read_text() == f"{v.sha256}  {MANIFEST}\n"
    model = OnnxModel(artifact)
    assert model.ref.manifest_sha256 == v.sha256
    scores = model.score(np.zeros((3, SPEC.dim)))
    np.testing.assert_allclose(scores, 0.5, atol=1e-6)  # sigmoid(mean(0))
    assert v.signed_by is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", 0.9999),
        ("threshold_fpr", 0.5),
        ("version", "9.9.9"),
        ("onnx_positive_column", 0),
        ("feature_version", "0"),
        ("libraries", {}),
    ],
)
def test_an_edited_manifest_field_is_refused(artifact: Path, field: str, value: object) -> None:
    _edit(artifact, lambda d: d.__setitem__(field, value))
    err = _refusal(artifact)
    assert isinstance(err, ArtifactIntegrityError)
    assert "modified after it was sealed" in str(err)


def test_an_edited_feature_spec_or_whitespace_is_refused(artifact: Path) -> None:
    _edit(artifact, lambda d: d["feature_spec"]["params"].__setitem__("buckets", 8))  # type: ignore[index]
    assert "modified after it was sealed" in str(_refusal(artifact))
    shutil.rmtree(artifact)
    raw = (_build(artifact) / MANIFEST).read_bytes()
    (artifact / MANIFEST).write_bytes(raw + b" ")
    assert "modified after it was sealed" in str(_refusal(artifact))


def test_a_flipped_model_is_refused_with_or_without_its_hash_updated(artifact: Path) -> None:
    _flip(artifact / ONNX_FILE)
    err = _refusal(artifact)
    assert isinstance(err, ArtifactIntegrityError)
    assert f"{ONNX_FILE}: sha256" in str(err)
    assert "recorded in the manifest" in str(err)
    from minerlens_core.digests import sha256_file

    _edit(artifact, lambda d: d["files"].__setitem__(ONNX_FILE, sha256_file(artifact / ONNX_FILE)))  # type: ignore[attr-defined]
    assert "modified after it was sealed" in str(_refusal(artifact))


def test_a_resealed_model_that_onnx_runtime_cannot_load_is_refused_cleanly(artifact: Path) -> None:
    from minerlens_core.digests import sha256_file

    (artifact / ONNX_FILE).write_bytes((artifact / ONNX_FILE).read_bytes()[:100])  # cut short
    _edit(artifact, lambda d: d["files"].__setitem__(ONNX_FILE, sha256_file(artifact / ONNX_FILE)), reseal=True)  # type: ignore[attr-defined]
    err = _refused_by_onnx(artifact)
    assert "ONNX Runtime cannot load it" in str(err)
    assert "refusing the artifact" in str(err)


def test_a_resealed_model_with_other_outputs_is_refused(artifact: Path) -> None:
    from minerlens_core.digests import sha256_file

    (artifact / ONNX_FILE).write_bytes(_onnx_bytes(output="scores"))
    _edit(artifact, lambda d: d["files"].__setitem__(ONNX_FILE, sha256_file(artifact / ONNX_FILE)), reseal=True)  # type: ignore[attr-defined]
    assert "the manifest names input 'features' and output 'probabilities'" in str(_refused_by_onnx(artifact))
    _edit(artifact, lambda d: d.__setitem__("onnx_output", "scores"), reseal=True)
    _edit(artifact, lambda d: d.__setitem__("onnx_positive_column", 5), reseal=True)
    assert "no column 5 to score" in str(_refused_by_onnx(artifact))


def test_replaced_missing_and_extra_files_are_refused(artifact: Path, pristine: Path) -> None:
    (artifact / BACKGROUND_FILE).write_bytes((pristine / ONNX_FILE).read_bytes())
    assert f"{BACKGROUND_FILE}: sha256" in str(_refusal(artifact))
    (artifact / BACKGROUND_FILE).unlink()
    assert f"{BACKGROUND_FILE} is missing" in str(_refusal(artifact))
    shutil.copy(pristine / BACKGROUND_FILE, artifact / BACKGROUND_FILE)
    (artifact / "evil.so").write_bytes(b"\x7fELF")
    assert "files not in the manifest: ['evil.so']" in str(_refusal(artifact))
    (artifact / "evil.so").unlink()
    (artifact / "sub").mkdir()
    assert "files not in the manifest: ['sub']" in str(_refusal(artifact))
    (artifact / "sub").rmdir()
    (artifact / BACKGROUND_FILE).unlink()
    (artifact / BACKGROUND_FILE).mkdir()
    assert f"{BACKGROUND_FILE} is missing (or not a regular file)" in str(_refusal(artifact))


def test_manifest_listing_paths_outside_the_directory_is_refused(artifact: Path) -> None:
    _edit(artifact, lambda d: d["files"].__setitem__("../../etc/passwd", "0" * 64), reseal=True)  # type: ignore[attr-defined]
    assert "not plain names" in str(_refusal(artifact))


def test_a_broken_seal_is_refused(artifact: Path) -> None:
    (artifact / DIGEST_FILE).unlink()
    assert "manifest.sha256 is missing" in str(_refusal(artifact))
    (artifact / DIGEST_FILE).write_text("not a digest\n")
    assert "not '<sha256>  manifest.json'" in str(_refusal(artifact))
    (artifact / DIGEST_FILE).write_text("0" * 64 + "\n")
    assert "modified after it was sealed" in str(_refusal(artifact))
    (artifact / MANIFEST).unlink()
    err = _refusal(artifact)
    assert "not a model artifact (no manifest.json)" in str(err)
    (artifact / MANIFEST).write_bytes(b" " * (5 << 20))
    assert "larger than" in str(_refusal(artifact))


def test_sealing_blesses_a_deliberate_edit_but_never_a_modified_file(artifact: Path) -> None:
    _edit(artifact, lambda d: d.__setitem__("threshold", 0.7))
    digest = seal_artifact(artifact)
    assert OnnxModel(artifact).threshold == 0.7
    assert OnnxModel(artifact).ref.manifest_sha256 == digest
    _flip(artifact / ONNX_FILE)
    with pytest.raises(ArtifactIntegrityError, match="recorded in the manifest"):
        seal_artifact(artifact)


def test_signed_artifact_loads_with_its_key_only(artifact: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, other = keys
    digest, kid = sign_artifact(artifact, private)
    v = VerifiedManifest(artifact, trust=Trust.from_file(public))
    assert (v.sha256, v.signed_by) == (digest, kid)
    assert OnnxModel(artifact, trust=Trust.from_file(public)).ref.manifest_sha256 == digest
    err = _refusal(artifact, Trust.from_file(other))
    assert isinstance(err, ArtifactSignatureError)
    assert f"signed by key {kid}, the configured key is" in str(err)


def test_signature_required_by_the_environment(
    artifact: Path, keys: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public, _ = keys
    monkeypatch.setenv(PUBKEY_ENV, str(public))
    err = _refusal(artifact)  # the loaders' default trust: MINERLENS_MODEL_PUBKEY
    assert isinstance(err, ArtifactSignatureError)
    assert "not signed (manifest.sig missing)" in str(err)
    sign_artifact(artifact, private)
    assert OnnxModel(artifact).ref.name == "minerlens-toy"
    monkeypatch.setenv(PUBKEY_ENV, str(artifact / "no-such.pub"))
    err = _refusal(artifact)  # a key that cannot be used refuses every artifact (services treat it as any refusal)
    assert isinstance(err, ArtifactTrustError)
    assert "cannot read the Ed25519 public key" in str(err)


def test_a_resealed_edit_of_a_signed_artifact_is_refused(artifact: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    sign_artifact(artifact, private)
    signature = (artifact / SIGNATURE_FILE).read_bytes()
    _edit(artifact, lambda d: d.__setitem__("threshold", 0.9999), reseal=True)  # the attacker re-seals...
    (artifact / SIGNATURE_FILE).write_bytes(signature)  # ...and puts the old signature back
    err = _refusal(artifact, Trust.from_file(public))
    assert isinstance(err, ArtifactSignatureError)
    assert "does not match manifest.json" in str(err)
    VerifiedManifest(artifact, trust=Trust.none())  # without a key only the seal speaks: re-sealing works


@pytest.mark.parametrize(
    "content",
    [b"", b"{}", b"[1]", b'{"algorithm": "rsa", "key_id": "x", "signature": ""}', b"\xff" * 5000, b"[" * 10000],
)
def test_malformed_signature_files_are_refused(artifact: Path, keys: tuple[Path, Path, Path], content: bytes) -> None:
    _, public, _ = keys
    (artifact / SIGNATURE_FILE).write_bytes(content)
    err = _refusal(artifact, Trust.from_file(public))
    assert isinstance(err, ArtifactSignatureError)
    assert "refusing" in str(err)


def test_forged_signature_with_the_right_key_id_is_refused(artifact: Path, keys: tuple[Path, Path, Path]) -> None:
    import base64

    private, public, _ = keys
    sign_artifact(artifact, private)
    doc = json.loads((artifact / SIGNATURE_FILE).read_text())
    doc["signature"] = base64.b64encode(bytes(64)).decode()
    (artifact / SIGNATURE_FILE).write_text(json.dumps(doc))
    assert "does not match manifest.json" in str(_refusal(artifact, Trust.from_file(public)))


def test_a_corrupt_background_is_an_artifact_error(tmp_path: Path) -> None:
    (tmp_path / "bg.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ArtifactError, match="unreadable background file"):
        Background.load(tmp_path / "bg.npz")


def test_cli_keygen_seal_sign_verify(artifact: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["model", "keygen", "--out", str(tmp_path / "k")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    res = runner.invoke(app, ["model", "keygen", "--out", str(tmp_path / "k")])
    assert res.exit_code != 0, "an existing key is never overwritten silently"
    res = runner.invoke(app, ["model", "sign", "--key", str(tmp_path / "k.key"), str(artifact)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["model", "verify", "--pubkey", str(tmp_path / "k.pub"), str(artifact)])
    assert res.exit_code == 0, res.output
    assert "model.onnx loads and scores" in res.output
    _edit(artifact, lambda d: d.__setitem__("threshold", 0.9999))
    res = runner.invoke(app, ["model", "verify", str(artifact)])
    assert res.exit_code != 0
    assert "modified after it was sealed" in res.output
    res = runner.invoke(app, ["model", "seal", str(artifact)])
    assert res.exit_code == 0, res.output
    assert not (artifact / SIGNATURE_FILE).exists(), "a new seal drops the old signature"
    res = runner.invoke(app, ["model", "verify", "--pubkey", str(tmp_path / "k.pub"), str(artifact)])
    assert res.exit_code != 0
    assert "not signed" in res.output


@pytest.mark.parametrize("name", ["default", "lstm-ae"])
def test_shipped_models_are_sealed(name: str) -> None:
    import hashlib

    directory = Path(__file__).resolve().parents[2] / "models" / name
    digest = hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()
    assert (directory / DIGEST_FILE).read_text() == f"{digest}  {MANIFEST}\n"
