"""Acquire against a real HTTP protocol on 127.0.0.1: a static STAC API, COGs
served with range requests, and a GLIMS-like web feature service.

The COGs are made from the Everest demo data (Landsat values reused as
Sentinel-2 DNs on a 10 m UTM 45N grid). Each test starts its own server, so
GDAL's per-URL cache never carries over between tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds
from shapely.geometry import box, mapping

from glaciermap.acquire.glims import acquire_outlines
from glaciermap.acquire.http import DownloadError
from glaciermap.acquire.settings import acquire_settings
from glaciermap.acquire.stac import download_scene
from glaciermap.config import validate_config
from glaciermap.errors import InputDataError

DATA = Path(__file__).resolve().parents[1] / "data" / "everest"
UTM45 = CRS.from_epsg(32645)
BAND_FILES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
# July: origin on the real Everest corner; August: a tile shifted by whole pixels.
JULY_ORIGIN = (478000.0, 3108140.0)
AUGUST_ORIGIN = (477300.0, 3108650.0)
# Area of interest, UTM 45N metres, inside both tiles; its lon/lat envelope goes to the config.
AOI_UTM = (481013.0, 3102507.0, 481634.0, 3103011.0)


# --------------------------------------------------------------------------- server


class LoopbackState:
    """What the server serves and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.items: list[dict] = []
        self.outlines: dict | None = None
        self.faults: dict[str, str] = {}  # path -> "404" | "slow" | "truncate-once"
        self.bytes_sent: dict[str, int] = {}
        self.full_gets: list[str] = []
        self.queries: list[dict] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass

    @property
    def state(self) -> LoopbackState:
        return self.server.state  # type: ignore[attr-defined]

    def _json(self, payload: dict, content_type: str = "application/json") -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        self._file(head=True)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if url.path in ("/", ""):
            self._json(landing_page(self._base()))
        elif url.path == "/search":
            collection = {"type": "FeatureCollection", "features": self.state.items, "links": []}
            self._json(collection, "application/geo+json")
        elif url.path == "/wfs":
            self._wfs(parse_qs(url.query))
        else:
            self._file(head=False)

    def _wfs(self, query: dict[str, list[str]]) -> None:
        with self.state.lock:
            self.state.queries.append(query)
        features = self.state.outlines["features"]
        cql = query.get("CQL_FILTER", [""])[0]
        if cql:
            wanted = set(re.findall(r"'([^']+)'", cql))
            features = [f for f in features if f["properties"]["glac_id"] in wanted]
        self._json({"type": "FeatureCollection", "features": features})

    def _file(self, head: bool) -> None:
        path = urlparse(self.path).path
        fault = self.state.faults.get(path)
        data = self.state.files.get(path)
        if data is None or fault == "404":
            self.send_error(404)
            return
        if fault == "slow" and not head:
            time.sleep(3)
        start, end = 0, len(data) - 1
        ranged = self.headers.get("Range", "")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged)
        if match:
            start = int(match[1])
            end = min(int(match[2]) if match[2] else end, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
            if not head:
                self.state.full_gets.append(path)
        body = data[start : end + 1]
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if fault == "truncate-once" and start >= 16384:  # a data block, not the header
            self.state.faults.pop(path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
        with self.state.lock:
            self.state.bytes_sent[path] = self.state.bytes_sent.get(path, 0) + len(body)


def landing_page(base: str) -> dict:
    return {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "loopback",
        "description": "static STAC API for tests",
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
        ],
        "links": [
            {"rel": "self", "href": f"{base}/", "type": "application/json"},
            {"rel": "root", "href": f"{base}/", "type": "application/json"},
            {
                "rel": "search",
                "href": f"{base}/search",
                "type": "application/geo+json",
                "method": "GET",
            },
            {
                "rel": "search",
                "href": f"{base}/search",
                "type": "application/geo+json",
                "method": "POST",
            },
        ],
    }


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = LoopbackState()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base_url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


# --------------------------------------------------------------------------- data


def everest_dns() -> dict[str, np.ndarray]:
    """Everest Landsat bands as L2A-like DNs (uint16, +1000 like baseline >= 04.00, 0 = no data)."""
    with rasterio.open(DATA / "LE71400412000304SGS00_RGB.tif") as rgb:
        red, green, blue = (rgb.read(i).astype(np.uint16) for i in (1, 2, 3))
    with rasterio.open(DATA / "LE71400412000304SGS00_B4.tif") as b4:
        nir = b4.read(1).astype(np.uint16)
    dns = {b: 1000 + 37 * v for b, v in zip(BAND_FILES, (blue, green, red, nir), strict=True)}
    for band in dns.values():
        band[520:530, 320:340] = 0  # a no-data patch inside the area of interest
    return dns


@pytest.fixture(scope="module")
def cogs(tmp_path_factory) -> dict[str, bytes]:
    """url path -> COG bytes, July and August (August: another origin, same grid)."""
    folder = tmp_path_factory.mktemp("cogs")
    dns = everest_dns()
    files = {}
    for date, origin, shift in (("july", JULY_ORIGIN, 0), ("august", AUGUST_ORIGIN, 11)):
        for band, name in BAND_FILES.items():
            path = folder / f"{date}_{name}.tif"
            data = np.roll(dns[band], shift, axis=1)
            # A COG as the catalogue serves it, not the geotiff fixture's GeoTIFF:
            # uncompressed 128-px blocks, so a window read fetches a known few bytes.
            profile = {
                "driver": "COG",
                "dtype": "uint16",
                "count": 1,
                "width": data.shape[1],
                "height": data.shape[0],
                "crs": UTM45,
                "transform": Affine(10.0, 0, origin[0], 0, -10.0, origin[1]),
                "nodata": 0,
                "blocksize": 128,
                "compress": "none",
                "overviews": "none",
            }
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data, 1)
            files[f"/files/{path.name}"] = path.read_bytes()
    return files


def lonlat_polygon(bounds_utm: tuple[float, ...]) -> tuple[dict, list[float]]:
    west, south, east, north = transform_bounds(UTM45, "EPSG:4326", *bounds_utm)
    return mapping(box(west, south, east, north)), [west, south, east, north]


def stac_item(base: str, item_id: str, when: str, cloud: float, date: str, baseline: str) -> dict:
    origin = JULY_ORIGIN if date == "july" else AUGUST_ORIGIN
    geometry, bbox = lonlat_polygon((origin[0], origin[1] - 6550, origin[0] + 8000, origin[1]))
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "geometry": geometry,
        "bbox": bbox,
        "properties": {
            "datetime": when,
            "eo:cloud_cover": cloud,
            "s2:processing_baseline": baseline,
        },
        "links": [],
        "assets": {
            band: {"href": f"{base}/files/{date}_{name}.tif", "type": "image/tiff"}
            for band, name in BAND_FILES.items()
        },
    }


def catalogue(base: str) -> list[dict]:
    """July: two equally clear items (the one nearer mid-July wins), a cloudy one and a
    clear one outside the window; August: one item of baseline 03.00 (no offset)."""
    return [
        stac_item(base, "S2A_JULY_EARLY", "2023-07-02T14:00:00Z", 5.0, "august", "05.09"),
        stac_item(base, "S2B_JULY_MID", "2023-07-17T14:00:00Z", 5.0, "july", "05.09"),
        stac_item(base, "S2A_JULY_CLOUDY", "2023-07-15T14:00:00Z", 60.0, "august", "05.09"),
        stac_item(base, "S2A_JUNE_CLEAR", "2023-06-30T14:00:00Z", 0.0, "august", "05.09"),
        stac_item(base, "S2B_AUGUST", "2023-08-10T14:00:00Z", 12.5, "august", "03.00"),
    ]


def make_config(base: str, tmp: Path, **acquire: object) -> dict:
    _, aoi = lonlat_polygon(AOI_UTM)
    section = {
        "enabled": True,
        "endpoint": base + "/",
        "aoi": {"bbox": aoi},
        "dates": {"july": "2023-07-01..2023-07-31", "august": "2023-08-01..2023-08-31"},
        "max_cloud": 20,
        "timeout_s": 1,
        "retries": 0,
        "outlines": {"source": "glims_wfs", "url": base + "/wfs"},
    }
    section.update(acquire)
    scenes = {
        date: {
            "acquired": day,
            "file": str(tmp / "scenes" / f"{date}.tif"),
            "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
        }
        for date, day in (("july", "2023-07-16"), ("august", "2023-08-16"))
    }
    config = {
        "data": {
            "scenes": scenes,
            "outlines": {"file": str(tmp / "outlines.gpkg")},
            "regions": {"train": {"bbox": [0, 0, 1, 1]}, "test": {"bbox": [1, 1, 2, 2]}},
        },
        "acquire": section,
    }
    return validate_config(config)


def serve_catalogue(httpd: ThreadingHTTPServer, cogs: dict[str, bytes]) -> str:
    base = base_url(httpd)
    httpd.state.files.update(cogs)
    httpd.state.items = catalogue(base)
    return base


def source_window(cog: bytes, tmp: Path, scene: Path) -> np.ndarray:
    """The window of the source COG under the scene's bounds, read independently."""
    path = tmp / "source.tif"
    path.write_bytes(cog)
    with rasterio.open(scene) as out, rasterio.open(path) as src:
        window = from_bounds(*out.bounds, transform=src.transform)
        assert window.col_off == round(window.col_off) and window.row_off == round(window.row_off)
        return src.read(1, window=window.round_offsets().round_lengths())


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --------------------------------------------------------------------------- tests


def test_scenes_equal_the_source_windows_on_one_grid(server, cogs, tmp_path):
    base = serve_catalogue(server, cogs)
    config = make_config(base, tmp_path)
    settings = acquire_settings(config)
    outputs = {
        d: download_scene(settings, d, config["data"]["scenes"][d]["file"])
        for d in ("july", "august")
    }

    with rasterio.open(outputs["july"]) as july, rasterio.open(outputs["august"]) as august:
        assert (july.crs, july.transform, july.shape) == (
            august.crs,
            august.transform,
            august.shape,
        )
        assert july.count == 4 and july.dtypes[0] == "float32"
        assert july.descriptions == ("blue", "green", "red", "nir")
        left, bottom, right, top = july.bounds
        assert (
            left <= AOI_UTM[0]
            and bottom <= AOI_UTM[1]
            and right >= AOI_UTM[2]
            and top >= AOI_UTM[3]
        )
        assert july.width * july.height < 100 * 100  # only the area, not the tile
        tags = {d: s.tags() for d, s in (("july", july), ("august", august))}
        scene = {"july": july.read(), "august": august.read()}

    assert tags["july"]["stac_item_id"] == "S2B_JULY_MID"  # tie on cloud: nearest mid-July
    assert tags["july"]["stac_datetime"].startswith("2023-07-17T14:00:00")
    assert float(tags["july"]["eo_cloud_cover"]) == 5.0
    assert tags["july"]["s2_processing_baseline"] == "05.09"
    assert tags["july"]["boa_offset"] == "-1000"
    assert tags["august"]["stac_item_id"] == "S2B_AUGUST"
    assert tags["august"]["s2_processing_baseline"] == "03.00"
    assert tags["august"]["boa_offset"] == "0"

    for date, offset in (("july", -1000.0), ("august", 0.0)):
        for index, name in enumerate(BAND_FILES.values()):
            dn = source_window(cogs[f"/files/{date}_{name}.tif"], tmp_path, outputs[date])
            expected = np.where(dn == 0, np.nan, (dn + offset) / 10000).astype(np.float32)
            np.testing.assert_array_equal(scene[date][index], expected)
    assert np.isnan(scene["july"]).any() and not np.isnan(scene["july"]).all()

    # Range requests only: a small part of each tile travelled, never a whole file.
    assert server.state.full_gets == []
    for date in ("july", "august"):
        for name in BAND_FILES.values():
            path = f"/files/{date}_{name}.tif"
            assert 0 < server.state.bytes_sent[path] < len(cogs[path]) / 4


@pytest.mark.parametrize(
    ("fault", "message"),
    [("404", "404"), ("slow", "imed out"), ("down", "STAC search")],
)
def test_network_failures_are_clear_and_leave_no_file(server, cogs, tmp_path, fault, message):
    base = serve_catalogue(server, cogs)
    if fault == "down":
        server.shutdown()
        server.server_close()
    else:
        server.state.faults["/files/july_B08.tif"] = fault
    config = make_config(base, tmp_path)
    output = Path(config["data"]["scenes"]["july"]["file"])
    started = time.monotonic()
    with pytest.raises(DownloadError, match=message) as error:
        download_scene(acquire_settings(config), "july", output)
    assert time.monotonic() - started < 30
    if fault != "down":
        assert "july_B08.tif" in str(error.value) and "(nir)" in str(error.value)
    assert leftovers(tmp_path / "scenes") == []


def test_interrupted_download_rerun_completes(server, cogs, tmp_path):
    base = serve_catalogue(server, cogs)
    server.state.faults["/files/july_B04.tif"] = "truncate-once"
    config = make_config(base, tmp_path)
    settings = acquire_settings(config)
    output = Path(config["data"]["scenes"]["july"]["file"])
    with pytest.raises(DownloadError):
        download_scene(settings, "july", output)
    assert leftovers(tmp_path / "scenes") == []

    download_scene(settings, "july", output)
    dn = source_window(cogs["/files/july_B04.tif"], tmp_path, output)
    with rasterio.open(output) as scene:
        red = scene.read(3)
    np.testing.assert_array_equal(
        red, np.where(dn == 0, np.nan, (dn - 1000.0) / 10000).astype(np.float32)
    )
    assert [p.name for p in leftovers(tmp_path / "scenes")] == ["july.tif"]


def test_no_item_under_the_cloud_limit_names_the_keys(server, cogs, tmp_path):
    base = serve_catalogue(server, cogs)
    config = make_config(base, tmp_path, max_cloud=1)
    with pytest.raises(InputDataError, match="acquire.max_cloud"):
        download_scene(acquire_settings(config), "july", config["data"]["scenes"]["july"]["file"])


# --------------------------------------------------------------------------- GLIMS


def glims_feature_collection() -> dict:
    """The Everest RGI outlines with GLIMS attribute names, as the WFS answers in GeoJSON."""
    rgi = gpd.read_file(DATA / "15_rgi60_glacier_outlines.gpkg")
    glims = gpd.GeoDataFrame(
        {
            "glac_id": rgi["GLIMSId"],
            "line_type": "glac_bound",
            "anlys_id": np.arange(len(rgi)) + 500000,
            "src_date": "2009-10-15T00:00:00",
            "glac_name": rgi["Name"].fillna(""),
        },
        geometry=rgi.geometry,
        crs=rgi.crs,
    )
    return json.loads(glims.to_json())


def test_glims_outlines_cut_to_the_area_with_attributes(server, tmp_path):
    server.state.outlines = glims_feature_collection()
    config = make_config(base_url(server), tmp_path)
    output = acquire_outlines(acquire_settings(config), config["data"]["outlines"]["file"])

    outlines = gpd.read_file(output, layer="outlines")
    assert {"glac_id", "line_type", "anlys_id", "src_date", "glac_name"} <= set(outlines.columns)
    assert outlines.crs.to_epsg() == 4326 and len(outlines) > 0
    west, south, east, north = config["acquire"]["aoi"]["bbox"]
    xmin, ymin, xmax, ymax = outlines.total_bounds
    assert (
        xmin >= west - 1e-3
        and ymin >= south - 1e-3
        and xmax <= east + 1e-3
        and ymax <= north + 1e-3
    )
    query = server.state.queries[-1]
    assert query["typeName"] == ["GLIMS:GLIMS_Glacier_Outlines"]
    assert [float(v) for v in query["bbox"][0].split(",")][0] <= west


def test_area_from_glacier_ids_drives_outlines_and_scene(server, cogs, tmp_path):
    base = serve_catalogue(server, cogs)
    server.state.outlines = glims_feature_collection()
    everest = gpd.read_file(DATA / "15_rgi60_glacier_outlines.gpkg").to_crs(UTM45)
    inside = everest[everest.geometry.within(box(479000, 3102000, 485000, 3107000))]
    glacier = inside.sort_values("Area").iloc[0]
    config = make_config(base, tmp_path, aoi={"glaciers": [glacier["GLIMSId"]], "buffer_m": 200})
    settings = acquire_settings(config)

    outlines = acquire_outlines(settings, config["data"]["outlines"]["file"])
    assert "CQL_FILTER" in server.state.queries[0]
    scene = download_scene(settings, "july", config["data"]["scenes"]["july"]["file"], outlines)

    with rasterio.open(scene) as out:
        left, bottom, right, top = out.bounds
    gxmin, gymin, gxmax, gymax = glacier.geometry.bounds
    assert left <= gxmin - 200 < left + 10 and top >= gymax + 200 > top - 10
    assert right >= gxmax + 200 and bottom <= gymin - 200
    assert glacier["GLIMSId"] in set(gpd.read_file(outlines)["glac_id"])


# --------------------------------------------------------------------------- workflow rules


def test_snakemake_rules_download_outlines_and_scenes(server, cogs, tmp_path, snakemake, dry_run):
    """rules/acquire.smk with its scripts, run by Snakemake against the loopback server."""
    base = serve_catalogue(server, cogs)
    server.state.outlines = glims_feature_collection()
    work = tmp_path / "work"
    config = make_config(base, Path("."))  # paths relative to the working directory
    work.mkdir()
    rules = Path(__file__).resolve().parents[1] / "rules"
    (work / "Snakefile").write_text(
        f'configfile: "config.yaml"\n\ninclude: "{rules / "common.smk"}"\n'
        f'include: "{rules / "acquire.smk"}"\n'
    )
    targets = ["scenes/july.tif", "scenes/august.tif", "outlines.gpkg"]
    snakemake(work, *targets, config=config, snakefile=work / "Snakefile", timeout=300)
    with rasterio.open(work / "scenes" / "july.tif") as july:
        assert july.tags()["stac_item_id"] == "S2B_JULY_MID"
    assert len(gpd.read_file(work / "outlines.gpkg")) > 0
    assert (work / "logs" / "acquire" / "scene_august.log").read_text().count("S2B_AUGUST") > 0

    # A setting reruns exactly the downloads that use it: the cloud limit both
    # scenes and not the outlines, one date's window that date alone.
    def planned(**acquire: object) -> set[str]:
        changed = {**config, "acquire": {**config["acquire"], **acquire}}
        return set(dry_run(work, changed, *targets, snakefile=work / "Snakefile").counts)

    assert planned() == set()
    assert planned(max_cloud=50) == {"acquire_scene_july", "acquire_scene_august"}
    august = {**config["acquire"]["dates"], "august": "2023-08-01..2023-08-30"}
    assert planned(dates=august) == {"acquire_scene_august"}
