"""``minerlens model keygen | seal | sign | verify``: the seal and signature of model artifacts.

* ``keygen --out PREFIX``: a new Ed25519 key pair, ``PREFIX.key`` (0600, keep it off the serving
  hosts) and ``PREFIX.pub`` (what ``MINERLENS_MODEL_PUBKEY`` points to);
* ``seal DIR...``: record the sha256 of ``manifest.json`` as it is now (after a deliberate edit);
  model files must still match the manifest;
* ``sign --key KEY DIR...``: sign a verified artifact (run after training or after ``seal``);
* ``verify [--pubkey PUB] DIR...``: every check the loaders make (``VerifiedManifest``, and the
  ONNX load with ``onnxruntime`` installed); exit status 2 if any artifact is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minerlens_core.errors import ArtifactError, MinerlensError
from minerlens_core.models.signing import Trust
from minerlens_core.terminal import JsonOpt, print_rows

model_app = typer.Typer(help="Model artifacts: seal, sign and verify them (Ed25519 keys).", no_args_is_help=True)


@model_app.command("keygen")
def keygen_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="key file prefix: writes PREFIX.key and PREFIX.pub")],
    force: Annotated[bool, typer.Option(help="replace existing key files")] = False,
) -> None:
    """Generate an Ed25519 signing key pair."""
    from minerlens_core.models.signing import generate_key

    private, public, kid = generate_key(out, force=force)
    typer.echo(f"key {kid}: private {private} (mode 0600, keep it secret), public {public}")


@model_app.command("seal")
def seal_cmd(directories: Annotated[list[Path], typer.Argument(help="artifact directories")]) -> None:
    """Record the sha256 of manifest.json as it is now (model files must still match it)."""
    from minerlens_core.models.manifest import seal_artifact

    for d in directories:
        typer.echo(f"sealed {d}: manifest sha256 {seal_artifact(d)} (sign it again if it was signed)")


@model_app.command("sign")
def sign_cmd(
    directories: Annotated[list[Path], typer.Argument(help="artifact directories")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Ed25519 private key (PEM, from `model keygen`)")],
) -> None:
    """Sign verified artifacts: manifest.sig over manifest.json (which lists every file's sha256)."""
    from minerlens_core.models.manifest import sign_artifact

    for d in directories:
        digest, kid = sign_artifact(d, key)
        typer.echo(f"signed {d}: manifest sha256 {digest}, key {kid}")


@model_app.command("verify")
def verify_cmd(
    directories: Annotated[list[Path], typer.Argument(help="artifact directories")],
    pubkey: Annotated[
        Path | None,
        typer.Option(help="require a signature by this Ed25519 public key (default: $MINERLENS_MODEL_PUBKEY)"),
    ] = None,
    onnx: Annotated[bool, typer.Option(help="also load model.onnx in ONNX Runtime and score a probe row")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Verify artifacts exactly as the scorer and explainer do; exit status 2 if any is refused.

    With --json: one JSON object per artifact on stdout (``status`` ok or refused, ``error`` says why)."""
    from minerlens_core.models.manifest import VerifiedManifest

    trust = Trust.from_file(pubkey) if pubkey is not None else Trust.from_env()
    refused = 0
    rows: list[list[object]] = []
    for d in directories:
        try:
            v = VerifiedManifest(d, trust=trust)
            loaded = _load_onnx(d, trust) if onnx else "ONNX load not checked"
        except ArtifactError as exc:
            refused += 1
            rows.append([str(d), "refused", None, None, None, None, None, str(exc)])
            if not as_json:
                typer.echo(f"refused: {exc}", err=True)
            continue
        m = v.manifest
        rows.append([str(d), "ok", m.model_name, m.version, v.sha256, v.signed_by or None, loaded, None])
        if not as_json:
            signature = f"signed by key {v.signed_by}" if v.signed_by else "signature not checked (no public key)"
            typer.echo(f"ok {d}: {m.model_name} {m.version}, manifest sha256 {v.sha256}, {signature}, {loaded}")
    if as_json:
        columns = ["artifact", "status", "model", "version", "manifest sha256", "signed by", "onnx", "error"]
        print_rows(columns, rows, as_json=True)
    if refused:
        msg = f"{refused} of {len(directories)} artifacts refused"
        raise MinerlensError(msg)


def _load_onnx(directory: Path, trust: Trust) -> str:
    try:
        from minerlens_core.models.onnx_model import OnnxModel
    except ImportError:
        return "ONNX load not checked (onnxruntime not installed)"
    OnnxModel(directory, trust=trust)
    return "model.onnx loads and scores"
