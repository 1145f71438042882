"""Content Credentials (C2PA) for every finished output: who made it (swapface, its version, the
model's fingerprint), from what (the source, as an ingredient with its hash) and how (a composite with
trained algorithmic media), signed so that any change to the file's bytes shows.

Signing happens on the temporary file, before the rename that publishes it, so no unsigned output ever
appears under its final name. Keys: an organisation's certificate chain and private key (PEM), from
`--sign-cert/--sign-key` or SWAPFACE_SIGN_CERT/SWAPFACE_SIGN_KEY; without them a local identity is
made on first use under the user's config folder, its certificates saying that it is no trusted
issuer. Nothing personal goes in a manifest: no names, paths, user or host.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swapface import __version__
from swapface.atomic import atomic_write_bytes
from swapface.errors import InputError, SwapfaceError

CERT_ENV, KEY_ENV = "SWAPFACE_SIGN_CERT", "SWAPFACE_SIGN_KEY"
COMPOSITE_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
SWAPFACE_ASSERTION = "org.swapface.synthesis"
LOCAL_ISSUER = "swapface local signing identity - NOT A TRUSTED ISSUER"
MIME_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".png": "image/png",
              ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff",
              ".webp": "image/webp", ".avi": "video/x-msvideo"}


def mime_type(path: str | Path) -> str | None:
    """The C2PA format of a file from its extension (None: the format cannot carry a manifest)."""
    return MIME_TYPES.get(Path(path).suffix.lower())


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files or an image sequence's frames (their names and hashes, in
    order)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    else:  # a sequence pattern (shot.####.exr): its frames
        from swapface.media.sequences import find_sequence

        sequence = find_sequence(path)
        if sequence is None:
            raise InputError(path, "no such file, folder or image sequence")
        files = [sequence.path(number) for number in sequence.numbers]
    listing = "".join(f"{p.name}:{sha256_file(p)}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 of the model's published weights: names the model without saying whose faces it learnt."""
    from swapface.modeldir import WEIGHTS_FILE

    return "sha256:" + sha256_file(Path(model_dir) / WEIGHTS_FILE)


# -- signing identity -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningIdentity:
    """A PEM certificate chain (signer first, then its issuers) and the signer's private key."""

    chain_pem: bytes
    key_pem: bytes
    origin: str  # where it came from, for messages: a path, or "local identity at ..."


def config_dir() -> Path:
    """The user's swapface config folder (XDG: $XDG_CONFIG_HOME/swapface, else ~/.config/swapface)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "swapface"


def load_identity(cert: str | Path | None = None, key: str | Path | None = None) -> SigningIdentity:
    """The organisation's identity when given (arguments, then environment), else the local one."""
    cert = cert or os.environ.get(CERT_ENV) or None
    key = key or os.environ.get(KEY_ENV) or None
    if (cert is None) != (key is None):
        raise SwapfaceError("give both a signing certificate and its key (--sign-cert and --sign-key, or "
                            f"{CERT_ENV} and {KEY_ENV}), or neither to use the local identity")
    if cert is None or key is None:
        return local_identity()
    pems = []
    for path, marker in ((Path(cert), b"-----BEGIN CERTIFICATE-----"), (Path(key), b"PRIVATE KEY-----")):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read ({exc.strerror})") from None
        if marker not in data:
            raise InputError(path, "is not a PEM " + ("certificate chain" if marker.startswith(b"-----B") else
                                                      "private key"))
        pems.append(data)
    return SigningIdentity(pems[0], pems[1], str(cert))


def local_identity(folder: Path | None = None) -> SigningIdentity:
    """The local identity under the config folder, made on first use (an own CA and a signer under it)."""
    folder = folder or config_dir() / "signing"
    cert_path, key_path = folder / "chain.pem", folder / "key.pem"
    if not (cert_path.exists() and key_path.exists()):
        chain, key = _make_local_identity()
        atomic_write_bytes(key_path, key)
        os.chmod(key_path, 0o600)
        atomic_write_bytes(cert_path, chain)
    return SigningIdentity(cert_path.read_bytes(), key_path.read_bytes(), f"local identity at {folder}")


def _make_local_identity() -> tuple[bytes, bytes]:
    """An ES256 CA and a signing certificate under it, shaped as C2PA requires of a signer (key usage
    digitalSignature, an extended key usage, subject and authority key identifiers)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, LOCAL_ISSUER)])

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = name("swapface local CA (self-signed, not trusted)")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("swapface local signer (not a trusted issuer)"))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return chain, pem


# -- manifests --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SwapRecord:
    """What a swap's manifest says: the source (hashed, not named), the model's fingerprint, the mark."""

    source: Path
    model_fingerprint: str
    watermark: bool = True


def manifest_json(record: SwapRecord, source_hash: str, output_format: str) -> dict:
    """The manifest definition: opened the source, then edited it with a trained model."""
    agent = {"name": "swapface", "version": __version__}
    return {
        "claim_generator_info": [agent],
        "title": "swapface output",
        "format": output_format,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.opened", "softwareAgent": agent, "parameters": {"ingredientIds": ["source"]}},
                {"action": "c2pa.edited", "softwareAgent": agent, "digitalSourceType": COMPOSITE_SOURCE_TYPE,
                 "description": "face replaced by a trained autoencoder (swapface)",
                 "parameters": {"model": record.model_fingerprint}},
            ]}},
            {"label": SWAPFACE_ASSERTION, "data": {
                "software": agent, "model_fingerprint": record.model_fingerprint, "source_sha256": source_hash,
                "watermark": "swapface" if record.watermark else "none"}},
        ],
    }


def _signer(identity: SigningIdentity):
    import c2pa

    info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=identity.chain_pem, private_key=identity.key_pem,
                               ta_url=None)
    try:
        return c2pa.Signer.from_info(info)
    except c2pa.C2paError as exc:
        raise SwapfaceError(f"cannot sign with {identity.origin}: {exc}") from None


def sign_file(path: str | Path, record: SwapRecord, identity: SigningIdentity, final_name: str | Path | None = None
              ) -> None:
    """Embed a signed manifest into `path` (in place). `final_name` gives the format when `path` is a
    temporary name; a format that cannot carry a manifest is an error (check with `mime_type` first)."""
    import c2pa

    path = Path(path)
    output_format = mime_type(final_name or path)
    if output_format is None:
        raise SwapfaceError(f"{final_name or path}: this format cannot carry Content Credentials")
    source_format = mime_type(record.source) if record.source.is_file() else None
    source_hash = source_digest(record.source)
    definition = manifest_json(record, source_hash, output_format)
    signed = path.with_name(path.name + ".signed")
    try:
        with c2pa.Builder(json.dumps(definition)) as builder:
            ingredient = {"title": "source" + record.source.suffix.lower(), "relationship": "parentOf",
                          "label": "source", "format": source_format or "application/octet-stream",
                          "metadata": {"sha256": source_hash}}
            if source_format is not None:
                with open(record.source, "rb") as fh:
                    builder.add_ingredient(json.dumps(ingredient), source_format, fh)
            else:  # a format C2PA cannot parse (mkv, webm, a folder's frames): recorded by its hash
                builder.add_ingredient(json.dumps(ingredient), "application/octet-stream", io.BytesIO(b""))
            with _signer(identity) as signer, open(path, "rb") as src, open(signed, "wb") as dst:
                builder.sign(signer, output_format, src, dst)
        os.replace(signed, path)
    except c2pa.C2paError as exc:
        raise SwapfaceError(f"{final_name or path}: signing failed ({exc})") from None
    finally:
        if signed.exists():
            signed.unlink()


def signing_step(record: SwapRecord, identity: SigningIdentity) -> Callable[[Path, Path], None]:
    """A writer's finalize hook: sign each finished temporary file as its final name's format."""

    def finalize(tmp: Path, final: Path) -> None:
        if mime_type(final) is not None:
            sign_file(tmp, record, identity, final)

    return finalize


CREDENTIALS_TAG = "content_credentials"


def prepare_signing(source: str | Path, model_dir: str | Path, output: str | Path, enabled: bool = True,
                    cert: str | Path | None = None, key: str | Path | None = None, watermark: bool = True
                    ) -> tuple[Callable[[Path, Path], None] | None, dict[str, str]]:
    """The writer's finalize hook and the tag that records what it does, settled before any work (a bad
    key fails here, not after hours of swapping). Off, the tag says it was turned off."""
    if not enabled:
        return None, {CREDENTIALS_TAG: "none (turned off with --no-credentials)"}
    identity = load_identity(cert, key)
    output = Path(output)
    if output.suffix and mime_type(output) is None:  # mkv, webm: C2PA has no binding for them
        return None, {CREDENTIALS_TAG: f"none ({output.suffix.lower()} cannot carry them)"}
    record = SwapRecord(Path(source), model_fingerprint(model_dir), watermark)
    return signing_step(record, identity), {CREDENTIALS_TAG: "c2pa"}


__all__ = ["SigningIdentity", "SwapRecord", "load_identity", "local_identity", "model_fingerprint",
           "prepare_signing", "sign_file", "signing_step"]
