"""Binary transfer is judged by content, not by name: only images whose bytes decode as their type, both ways.

Attacks through the real hub: an extract's Parquet copied to ``leak.png`` and downloaded; a PNG
with a zip appended downloaded; a zip named ``x.png`` uploaded; the same polyglot uploaded. The
project allows ingress, so uploads reach the content check instead of being refused as uploads.
The rules themselves (Pillow decoding, re-encoding) are checked without a hub first.
"""
from __future__ import annotations

import base64
import io
import zipfile

import pytest
from PIL import Image

import hub_client as hubclient
import hub_world as world
from hub_client import audit_events
from hub_world import PASSWORDS
from hub_config.single_user import content_rules as rules

PROJECT = "pictures"
MARKER = b"enclave-secret-rows-7d1e"


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("rows.csv", MARKER + b"\n1,2,3\n")
    return out.getvalue()


# ------------------------------------------------------------------------------ the rules alone
def test_a_real_image_passes_and_is_rebuilt_from_its_pixels():
    image = rules.disarm_image(png_bytes(), "figure.png", max_bytes=10**6)
    assert image.format == "PNG" and image.mimetype == "image/png"
    assert Image.open(io.BytesIO(image.data)).size == (40, 30)


def test_bytes_appended_to_an_image_do_not_survive():
    polyglot = png_bytes() + zip_bytes()
    assert zipfile.is_zipfile(io.BytesIO(polyglot))  # the attack: a valid PNG that is also a zip
    image = rules.disarm_image(polyglot, "figure.png", max_bytes=10**6)
    assert MARKER not in image.data and not zipfile.is_zipfile(io.BytesIO(image.data))


@pytest.mark.parametrize(("data", "name"), [
    (zip_bytes(), "x.png"),  # a zip named as an image
    (b"PAR1" + bytes(200) + b"PAR1", "leak.png"),  # a Parquet named as an image
    (png_bytes(), "figure.jpg"),  # an image, but not the type its name claims
    (png_bytes()[:60], "cut.png"),  # a truncated image
    (png_bytes(), "data.parquet"),  # not an image type at all
])
def test_non_images_are_refused(data, name):
    with pytest.raises(rules.NotAnImage):
        rules.disarm_image(data, name, max_bytes=10**6)


def test_image_size_limit():
    with pytest.raises(rules.NotAnImage):
        rules.disarm_image(png_bytes((400, 400)), "big.png", max_bytes=100)


# ------------------------------------------------------------------------------ through the real hub
@pytest.fixture(scope="module")
def carol_in_pictures(running_hub):
    registry = running_hub.settings.registry_url
    world.add_approved_project(running_hub.settings.home, registry, PROJECT, ["carol"])
    world.set_workspace_conditions(registry, PROJECT, ingress_allowed=True)
    workspace = hubclient.Workspace(running_hub.url, "carol", PASSWORDS["carol"], PROJECT)
    answer = workspace.kernel.run(
        "import shutil\n"
        "shutil.copy('/data/births.parquet', 'leak.png')\n"
        f"open('figure.png', 'wb').write({png_bytes()!r} + {zip_bytes()!r})\n"
    )
    assert answer["status"] == "ok", answer
    yield workspace
    workspace.close(running_hub.url)




@pytest.mark.hub
@pytest.mark.timeout(300)
@pytest.mark.parametrize("params", [{"format": "base64", "type": "file"}, {}])
def test_renamed_parquet_does_not_download(running_hub, carol_in_pictures, params):
    answer = carol_in_pictures.get("leak.png", **params)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert "PAR1" not in answer.text
    refused = [e for e in audit_events(running_hub.settings.registry_url, "workspace.transfer.refused")
               if e[0] == "carol" and e[2] == PROJECT and e[3].get("path") == "leak.png"]
    assert refused and refused[-1][3]["reason"].startswith("out:")


@pytest.mark.hub
@pytest.mark.timeout(300)
def test_image_with_a_zip_appended_downloads_only_as_pixels(carol_in_pictures):
    answer = carol_in_pictures.get("figure.png", format="base64", type="file")
    assert answer.status_code == 200, answer.text[:200]
    served = base64.b64decode(answer.json()["content"])
    assert Image.open(io.BytesIO(served)).size == (40, 30)  # the image viewer still works
    assert MARKER not in served and not zipfile.is_zipfile(io.BytesIO(served))


@pytest.mark.hub
@pytest.mark.timeout(300)
def test_zip_named_png_does_not_upload(running_hub, carol_in_pictures):
    model = {"type": "file", "format": "base64", "content": base64.b64encode(zip_bytes()).decode()}
    answer = carol_in_pictures.put("x.png", model)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert not (running_hub.settings.home / "workspaces" / PROJECT / "carol" / "x.png").exists()


@pytest.mark.hub
@pytest.mark.timeout(300)
def test_uploaded_image_is_stored_as_its_pixels_and_audited(running_hub, carol_in_pictures):
    polyglot = png_bytes() + zip_bytes()
    model = {"type": "file", "format": "base64", "content": base64.b64encode(polyglot).decode()}
    answer = carol_in_pictures.put("upload.png", model)
    assert answer.status_code in (200, 201), answer.text[:200]
    stored = (running_hub.settings.home / "workspaces" / PROJECT / "carol" / "upload.png").read_bytes()
    assert MARKER not in stored and Image.open(io.BytesIO(stored)).size == (40, 30)
    received = [e for e in audit_events(running_hub.settings.registry_url, "workspace.transfer.in")
                if e[0] == "carol" and e[2] == PROJECT and e[3].get("path") == "upload.png"]
    assert received and received[-1][3]["sha256"] == rules.sha256_hex(stored)


@pytest.mark.hub
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["extract.parquet", "archive.zip", "blob.bin"])
def test_binary_uploads_are_refused_even_with_ingress(running_hub, carol_in_pictures, name):
    model = {"type": "file", "format": "base64", "content": base64.b64encode(zip_bytes()).decode()}
    answer = carol_in_pictures.put(name, model)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert not (running_hub.settings.home / "workspaces" / PROJECT / "carol" / name).exists()
