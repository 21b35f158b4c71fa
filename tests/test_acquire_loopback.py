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
from sentinel2_products import SCL_NOT_VEGETATED, SCL_SNOW
from shapely.geometry import box, mapping

from glaciermap.acquire.glims import acquire_outlines
from glaciermap.acquire.http import DownloadError
from glaciermap.acquire.settings import AcquireSettings
from glaciermap.acquire.stac import download_scene
from glaciermap.config import validate_config
from glaciermap.data.prepare import prepare_scene
from glaciermap.errors import InputDataError
from glaciermap.io.validity import MASKED, NO_DATA, VALID

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
    return {b: 1000 + 37 * v for b, v in zip(BAND_FILES, (blue, green, red, nir), strict=True)}


def area_offset(origin: tuple[float, float]) -> tuple[int, int]:
    """(row, col) of the area's north-west corner in a tile at ``origin`` (10 m pixels)."""
    return int((origin[1] - AOI_UTM[3]) // 10), int((AOI_UTM[0] - origin[0]) // 10)


def area_slice(origin: tuple[float, float], rows: tuple[int, int], cols: tuple[int, int]):
    """Tile pixels of rows/cols counted from the area's corner, widened to whole
    20 m SCL pixels (even tile rows and columns)."""
    row0, col0 = area_offset(origin)
    r0, r1 = (row0 + rows[0]) // 2 * 2, (row0 + rows[1] + 1) // 2 * 2
    c0, c1 = (col0 + cols[0]) // 2 * 2, (col0 + cols[1] + 1) // 2 * 2
    return slice(r0, r1), slice(c0, c1)


def scl_of(dns: dict[str, np.ndarray]) -> np.ndarray:
    """20 m SCL of 10 m DNs: snow and ice where bright, bare ground elsewhere, no data
    where the DNs are 0 (each 20 m class from the north-west pixel of its 2 x 2)."""
    blue = dns["blue"][::2, ::2]
    scl = np.where(blue > 1000 + 37 * 150, SCL_SNOW, SCL_NOT_VEGETATED).astype(np.uint8)
    scl[blue == 0] = 0
    return scl


def write_cog(path: Path, data: np.ndarray, origin: tuple[float, float], pixel: float) -> bytes:
    # A COG as the catalogue serves it, not the geotiff fixture's GeoTIFF:
    # uncompressed 128-px blocks, so a window read fetches a known few bytes.
    profile = {
        "driver": "COG",
        "dtype": data.dtype.name,
        "count": 1,
        "width": data.shape[1],
        "height": data.shape[0],
        "crs": UTM45,
        "transform": Affine(pixel, 0, origin[0], 0, -pixel, origin[1]),
        "nodata": 0,
        "blocksize": 128,
        "compress": "none",
        "overviews": "none",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path.read_bytes()


def tile_files(folder: Path, name: str, dns: dict[str, np.ndarray], scl: np.ndarray, origin):
    """url path -> COG bytes of one item's four bands and its SCL."""
    files = {}
    for band, code in BAND_FILES.items():
        path = folder / f"{name}_{code}.tif"
        files[f"/files/{path.name}"] = write_cog(path, dns[band], origin, 10.0)
    files[f"/files/{name}_SCL.tif"] = write_cog(folder / f"{name}_SCL.tif", scl, origin, 20.0)
    return files


@pytest.fixture(scope="module")
def cogs(tmp_path_factory) -> dict[str, bytes]:
    """url path -> COG bytes, July and August (August: another origin, same grid),
    each with the same no-data patch inside the area and a cloud-free SCL."""
    folder = tmp_path_factory.mktemp("cogs")
    base = everest_dns()
    files = {}
    for date, origin, shift in (("july", JULY_ORIGIN, 0), ("august", AUGUST_ORIGIN, 11)):
        dns = {band: np.roll(values, shift, axis=1) for band, values in base.items()}
        patch = area_slice(origin, (7, 16), (19, 38))
        for values in dns.values():
            values[patch] = 0  # a no-data patch inside the area of interest
        files.update(tile_files(folder, date, dns, scl_of(dns), origin))
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
            for band, name in {**BAND_FILES, "scl": "SCL"}.items()
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


def make_config(base: str, tmp: Path, scl: bool = False, **acquire: object) -> dict:
    """A config downloading July and August over the area; with ``scl`` each date
    also gets its merged SCL (``validity.scl``) and masks with it."""
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
    if scl:
        for date, scene in scenes.items():
            scene["validity"] = {"scl": str(tmp / "scenes" / f"{date}_scl.tif")}
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
    settings = AcquireSettings.from_config(config["acquire"])
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
        download_scene(AcquireSettings.from_config(config["acquire"]), "july", output)
    assert time.monotonic() - started < 30
    if fault != "down":
        assert "july_B08.tif" in str(error.value) and "(nir)" in str(error.value)
    assert leftovers(tmp_path / "scenes") == []


def test_interrupted_download_rerun_completes(server, cogs, tmp_path):
    base = serve_catalogue(server, cogs)
    server.state.faults["/files/july_B04.tif"] = "truncate-once"
    config = make_config(base, tmp_path)
    settings = AcquireSettings.from_config(config["acquire"])
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
        download_scene(
            AcquireSettings.from_config(config["acquire"]),
            "july",
            config["data"]["scenes"]["july"]["file"],
        )


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
    output = acquire_outlines(
        AcquireSettings.from_config(config["acquire"]), config["data"]["outlines"]["file"]
    )

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
    settings = AcquireSettings.from_config(config["acquire"])

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
    config = make_config(base, Path("."), scl=True)  # paths relative to the working directory
    work.mkdir()
    rules = Path(__file__).resolve().parents[1] / "rules"
    (work / "Snakefile").write_text(
        f'configfile: "config.yaml"\n\ninclude: "{rules / "common.smk"}"\n'
        f'include: "{rules / "acquire.smk"}"\n'
    )
    targets = ["scenes/july.tif", "scenes/august.tif", "scenes/july_scl.tif", "outlines.gpkg"]
    snakemake(work, *targets, config=config, snakefile=work / "Snakefile", timeout=300)
    with rasterio.open(work / "scenes" / "july.tif") as july:
        assert july.tags()["stac_item_id"] == "S2B_JULY_MID"
    with rasterio.open(work / "scenes" / "july_scl.tif") as scl:
        assert scl.tags()["stac_item_ids"] == "S2B_JULY_MID" and scl.read(1).max() <= 11
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


# --------------------------------------------------------------------------- mosaics

# Area-relative boxes (rows, cols of the area's 10 m grid, widened to 20 m SCL pixels).
CLOUD_A = ((5, 25), (5, 30))  # over the west of the area, where tile B has no data
SHADOW_B = ((30, 40), (35, 50))  # where tile A is clear
SEAM_COL = 20  # tile B has data from this area column on
CLOUD_C = ((0, 45), (0, 55))  # nearly all of the area


def mosaic_tiles() -> dict[str, dict]:
    """Per item: origin, DNs and SCL of its tile. July: A and B of one day (B with a
    seam and a shadow), C on another day, the least cloudy item by eo:cloud_cover
    but cloudy over the area; August: D and E of one day (E with the seam)."""
    base = everest_dns()
    tiles = {}
    for name, origin, shift in (
        ("A", JULY_ORIGIN, 0), ("B", AUGUST_ORIGIN, 11), ("C", JULY_ORIGIN, 0),
        ("D", JULY_ORIGIN, 0), ("E", AUGUST_ORIGIN, 11),
    ):  # fmt: skip
        dns = {band: np.roll(values, shift, axis=1) for band, values in base.items()}
        if name in ("B", "E"):
            row0, col0 = area_offset(origin)
            seam = (col0 + SEAM_COL) // 2 * 2
            for values in dns.values():
                values[:, :seam] = 0
        scl = scl_of(dns)
        for box_, cls, who in ((CLOUD_A, 9, "AD"), (SHADOW_B, 3, "B"), (CLOUD_C, 8, "C")):
            if name in who:
                rows, cols = area_slice(origin, *box_)
                scl[rows.start // 2 : rows.stop // 2, cols.start // 2 : cols.stop // 2] = cls
        tiles[name] = {"origin": origin, "dns": dns, "scl": scl}
    return tiles


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory) -> tuple[dict, dict[str, bytes]]:
    folder = tmp_path_factory.mktemp("mosaic")
    tiles = mosaic_tiles()
    files = {}
    for name, tile in tiles.items():
        files.update(tile_files(folder, f"tile{name}", tile["dns"], tile["scl"], tile["origin"]))
    return tiles, files


def mosaic_item(base: str, item_id: str, when: str, cloud: float, tile: str) -> dict:
    origin = JULY_ORIGIN if tile in "ACD" else AUGUST_ORIGIN
    item = stac_item(base, item_id, when, cloud, "july" if origin == JULY_ORIGIN else "x", "05.09")
    item["assets"] = {
        band: {"href": f"{base}/files/tile{tile}_{code}.tif", "type": "image/tiff"}
        for band, code in {**BAND_FILES, "scl": "SCL"}.items()
    }
    return item


def serve_mosaic(httpd: ThreadingHTTPServer, files: dict[str, bytes]) -> str:
    base = base_url(httpd)
    httpd.state.files.update(files)
    httpd.state.items = [
        mosaic_item(base, "S2A_JULY_A", "2023-07-17T14:00:00Z", 8.0, "A"),
        mosaic_item(base, "S2B_JULY_B", "2023-07-17T14:00:05Z", 12.0, "B"),
        mosaic_item(base, "S2A_JULY_C", "2023-07-05T14:00:00Z", 2.0, "C"),
        mosaic_item(base, "S2A_AUG_D", "2023-08-12T14:00:00Z", 6.0, "D"),
        mosaic_item(base, "S2B_AUG_E", "2023-08-12T14:00:05Z", 9.0, "E"),
    ]
    return base


def on_grid(tile: dict, grid_transform: Affine, shape: tuple[int, int]):
    """A tile's DNs (4, h, w) and SCL (h, w) on the scene grid, by index arithmetic:
    the grid lies on the tile's 10 m lattice; a 20 m class covers 2 x 2 pixels."""
    row0 = round((tile["origin"][1] - grid_transform.f) / 10)
    col0 = round((grid_transform.c - tile["origin"][0]) / 10)
    rows, cols = np.arange(row0, row0 + shape[0]), np.arange(col0, col0 + shape[1])
    dns = np.stack([tile["dns"][band][np.ix_(rows, cols)] for band in BAND_FILES])
    return dns, tile["scl"][np.ix_(rows // 2, cols // 2)]


def layers_for(tile: dict, grid_transform: Affine, shape: tuple[int, int]):
    """DNs, SCL, data (all bands non-zero) and valid (data, SCL not masked) on the grid."""
    dns, scl = on_grid(tile, grid_transform, shape)
    data = (dns != 0).all(axis=0)
    return dns, scl, data, data & ~np.isin(scl, [0, 1, 3, 8, 9, 10])


def test_mosaic_of_one_day_beats_the_least_cloudy_item_pixel_for_pixel(server, mosaic, tmp_path):
    tiles, files = mosaic
    base = serve_mosaic(server, files)
    config = make_config(base, tmp_path, scl=True)
    settings = AcquireSettings.from_config(config["acquire"])
    scenes = config["data"]["scenes"]
    for date in ("july", "august"):
        download_scene(settings, date, scenes[date]["file"], None, scenes[date]["validity"]["scl"])

    for date, first, second in (("july", "A", "B"), ("august", "D", "E")):
        with (
            rasterio.open(scenes[date]["file"]) as out,
            rasterio.open(scenes[date]["validity"]["scl"]) as scl_file,
        ):
            scene, tags, transform = out.read(), out.tags(), out.transform
            classes = scl_file.read(1)
            assert scl_file.transform == transform
        ids = tags["stac_item_ids"].split(",")
        assert [i.split("_")[-1] for i in ids] == [first, second]  # one day, the clearer first
        assert tags["stac_item_id"] == ids[0] and len(tags["boa_offsets"].split(",")) == 2
        assert tags["stac_datetimes"].split(",")[0].startswith(tags["stac_datetime"][:16])

        dn_1, scl_1, data_1, valid_1 = layers_for(tiles[first], transform, scene.shape[1:])
        dn_2, scl_2, data_2, valid_2 = layers_for(tiles[second], transform, scene.shape[1:])
        from_first = valid_1 | (~valid_2 & data_1)
        from_second = ~from_first & data_2
        assert from_second.any() and (valid_2 & ~valid_1).any()  # the second item fills in
        expected = np.where(from_first, dn_1, np.where(from_second, dn_2, 0))
        reflectance = np.where(expected == 0, np.nan, (expected - 1000.0) / 10000)
        np.testing.assert_array_equal(scene, reflectance.astype(np.float32))
        np.testing.assert_array_equal(
            classes, np.where(from_first, scl_1, np.where(from_second, scl_2, 0))
        )

    # July's C is the least cloudy item of the window but sees little of the area.
    assert "S2A_JULY_C" not in ids

    # Preparing the date masks what neither item saw: nodata in the scene, MASKED codes.
    data = make_config(base, tmp_path, scl=True)["data"]
    data["on_grid_mismatch"] = "error"
    out, validity = tmp_path / "out/july.tif", tmp_path / "out/july_validity.tif"
    prepare_scene(data, "july", out, validity)
    with rasterio.open(out) as prepared, rasterio.open(validity) as codes_file:
        prepared_scene, codes = prepared.read(), codes_file.read(1)
        assert prepared.tags()["source_items"] == "S2A_JULY_A,S2B_JULY_B"
    _, _, data_a, valid_a = layers_for(tiles["A"], prepared.transform, codes.shape)
    _, _, data_b, valid_b = layers_for(tiles["B"], prepared.transform, codes.shape)
    seen = valid_a | valid_b
    np.testing.assert_array_equal(np.isfinite(prepared_scene).all(axis=0), seen)
    np.testing.assert_array_equal(
        codes, np.where(seen, VALID, np.where(data_a | data_b, MASKED, NO_DATA))
    )
    assert (codes == MASKED).any() and (codes == VALID).mean() > 0.8


def test_window_without_an_item_over_the_area_is_refused(server, mosaic, tmp_path):
    tiles, files = mosaic
    base = serve_mosaic(server, files)
    for item in server.state.items:  # every footprint a degree to the east
        ring = item["geometry"]["coordinates"][0]
        item["geometry"]["coordinates"] = [[[x + 1.0, y] for x, y in ring]]
        item["bbox"] = [v + (1.0 if i % 2 == 0 else 0.0) for i, v in enumerate(item["bbox"])]
    config = make_config(base, tmp_path, scl=True)
    scene = config["data"]["scenes"]["july"]
    with pytest.raises(InputDataError, match=r"no item .* covers the area .*'acquire\.aoi'"):
        download_scene(
            AcquireSettings.from_config(config["acquire"]),
            "july",
            scene["file"],
            None,
            scene["validity"]["scl"],
        )
    assert leftovers(tmp_path / "scenes") == []


# --------------------------------------------------------------------------- SWIR and DEM

SWIR_ORIGIN = JULY_ORIGIN
DEM_COLLECTION = "cop-dem-glo-30"


def swir_dn(cols: np.ndarray, band: str) -> np.ndarray:
    """20 m DNs of B11 (a ramp along the columns) and B12 (constant), +1000 offset."""
    return 1000 + (3000 + 10 * cols if band == "swir16" else 1500 + 0 * cols)


def dem_plane(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    return 3000.0 + 0.3 * (east - JULY_ORIGIN[0]) - 0.1 * (north - JULY_ORIGIN[1])


def swir_and_dem_files(folder: Path) -> dict[str, bytes]:
    """July's 20 m SWIR COGs, and a DEM COG in lon/lat (about 10 m) over the tile."""
    files = {}
    cols = np.broadcast_to(np.arange(400), (328, 400))
    for band in ("swir16", "swir22"):
        path = folder / f"july_{band}.tif"
        data = swir_dn(cols, band).astype(np.uint16)
        files[f"/files/{path.name}"] = write_cog(path, data, SWIR_ORIGIN, 20.0)
    west, south, east, north = transform_bounds(
        UTM45, "EPSG:4326", JULY_ORIGIN[0], JULY_ORIGIN[1] - 6550, JULY_ORIGIN[0] + 8000,
        JULY_ORIGIN[1],
    )  # fmt: skip
    step = 0.0001
    width, height = int((east - west) / step) + 2, int((north - south) / step) + 2
    lon = west + (np.arange(width) + 0.5) * step
    lat = north - (np.arange(height) + 0.5) * step
    lons, lats = np.meshgrid(lon, lat)
    from rasterio.warp import transform as warp_transform

    xs, ys = warp_transform("EPSG:4326", UTM45, lons.ravel(), lats.ravel())
    z = dem_plane(np.array(xs), np.array(ys)).reshape(height, width).astype(np.float32)
    profile = {
        "driver": "COG", "dtype": "float32", "count": 1, "width": width, "height": height,
        "crs": "EPSG:4326", "transform": Affine(step, 0, west, 0, -step, north),
        "nodata": -32767.0, "blocksize": 128, "compress": "none", "overviews": "none",
    }  # fmt: skip
    path = folder / "dem.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
    files["/files/dem.tif"] = path.read_bytes()
    return files


def test_swir_bands_and_a_dem_from_stac_make_an_eight_channel_scene(server, cogs, tmp_path):
    from glaciermap.acquire.stac import download_dem
    from glaciermap.io.scenes import read_prepared_channels

    base = serve_catalogue(server, cogs)
    server.state.files.update(swir_and_dem_files(tmp_path))
    for item in server.state.items:
        for band in ("swir16", "swir22"):  # Earth Search v1 asset keys
            item["assets"][band] = {"href": f"{base}/files/july_{band}.tif"}
    geometry, bbox = lonlat_polygon(
        (JULY_ORIGIN[0], JULY_ORIGIN[1] - 6550, JULY_ORIGIN[0] + 8000, JULY_ORIGIN[1])
    )
    server.state.items.append(
        {
            "type": "Feature", "stac_version": "1.0.0", "id": "Copernicus_DSM_N27_E086",
            "collection": DEM_COLLECTION, "geometry": geometry, "bbox": bbox,
            "properties": {"datetime": "2021-04-22T00:00:00Z"}, "links": [],
            "assets": {"data": {"href": f"{base}/files/dem.tif", "type": "image/tiff"}},
        }
    )  # fmt: skip
    config = make_config(base, tmp_path)
    channels = ["blue", "green", "red", "nir", "swir16", "swir22", "elevation", "slope"]
    config["data"]["channels"] = channels
    config["data"]["dem"] = {"file": str(tmp_path / "dem.tif"), "collection": DEM_COLLECTION}
    for scene in config["data"]["scenes"].values():
        scene["bands"].update(swir16=5, swir22=6)
    config = validate_config(config)
    settings = AcquireSettings.from_config(config["acquire"])
    bands = channels[:6]
    scene = download_scene(settings, "july", config["data"]["scenes"]["july"]["file"], bands=bands)
    dem = download_dem(settings, config["data"]["dem"], config["data"]["dem"]["file"])

    with rasterio.open(scene) as dataset:
        assert dataset.descriptions == tuple(bands)
        swir16 = dataset.read(5)
        transform = dataset.transform
        tags = dataset.tags(5)
    assert tags["sentinel2"] == "B11" and tags["href"].endswith("july_swir16.tif")
    # 20 m -> 10 m bilinearly, the -1000 offset applied: the ramp, at each 10 m centre.
    rows, cols = np.mgrid[0 : swir16.shape[0], 0 : swir16.shape[1]] + 0.5
    east, north = transform @ (cols, rows)
    col20 = (east - SWIR_ORIGIN[0]) / 20 - 0.5
    expected = (swir_dn(col20, "swir16") - 1000) / 10000
    seen = np.isfinite(swir16)
    assert seen.mean() > 0.5
    assert np.allclose(swir16[seen], expected[seen], atol=1.01e-4)  # DNs are integers
    with rasterio.open(dem) as dataset:
        elevation = dataset.read(1)
        assert dataset.transform == transform and dataset.crs == UTM45
    assert np.allclose(elevation, dem_plane(east, north), atol=0.5)

    # Prepared: eight channels on the grid, slope that of the plane.
    out = tmp_path / "results" / "july.tif"
    prepare_scene(config["data"], "july", out, tmp_path / "results" / "july_validity.tif")
    values, _, prepared = read_prepared_channels(out)
    assert prepared == tuple(channels)
    slope = values[7][np.isfinite(values[7])]
    # GDAL's warper places lon/lat pixels to 1/8 pixel (its approximate transformer),
    # so a plane warped across CRSs keeps its slope to a few hundredths of a degree.
    assert np.allclose(slope, np.degrees(np.arctan(np.hypot(0.3, 0.1))), atol=0.3)
    assert abs(np.mean(slope) - np.degrees(np.arctan(np.hypot(0.3, 0.1)))) < 0.01
    assert server.state.full_gets == []  # range requests only
