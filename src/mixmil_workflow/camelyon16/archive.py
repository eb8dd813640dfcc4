"""The DSMIL Camelyon16 feature archive (Li et al. 2021) and its conversion to one AnnData file.

Layout of the archive (zip, or the folder it unpacks to)::

    Camelyon16.csv            header "0,label"; rows "datasets/Camelyon16/1-tumor/test_033.csv,1"
    0-normal.csv, 1-tumor.csv the same per class
    0-normal/<slide>.csv      one row per patch: header "0,...,511", 512 features
    1-tumor/<slide>.csv

Training slides are ``normal_*``/``tumor_*``, the official test slides ``test_*`` (filed into the class
folders by label). The conversion reads the per-slide CSVs straight out of the zip (no 30 GB unpacked
copy on disk) and streams them slide by slide into an HDF5 file in AnnData's on-disk format, so the
memory it needs is one slide, not the 4.9 M x 512 matrix.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mixmil_workflow.io import atomic_path

INDEX_NAME = "Camelyon16.csv"
log = logging.getLogger(__name__)


class ArchiveError(ValueError):
    """The feature archive does not have the DSMIL layout or holds invalid values."""


class FeatureArchive:
    """Read access to the archive's files, whether zipped or unpacked."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"Camelyon16 feature archive {self.path} does not exist")
        if self.path.is_dir():
            self._zip = None
            self._names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]
        else:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as err:
                raise ArchiveError(
                    f"{self.path} is not a readable zip file ({err}); delete it and rerun the download rule"
                ) from err
            self._names = [n for n in self._zip.namelist() if not n.endswith("/")]
        indices = [n for n in self._names if PurePosixPath(n).name == INDEX_NAME]
        if len(indices) != 1:
            raise ArchiveError(
                f"{self.path}: expected one {INDEX_NAME} (the DSMIL bag list), found {len(indices)}; "
                "is this the DSMIL Camelyon16 feature archive?"
            )
        self.index_name = indices[0]
        self.root = PurePosixPath(self.index_name).parent
        self._name_set = set(self._names)

    def open(self, name: str) -> io.BufferedIOBase:
        if self._zip is not None:
            return self._zip.open(name)
        return open(self.path / name, "rb")

    def __contains__(self, name: str) -> bool:
        return name in self._name_set

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> FeatureArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_slide_table(archive: FeatureArchive) -> pd.DataFrame:
    """One row per slide: ``slide``, ``label`` (0 normal, 1 tumour), ``official_split`` (train/test) and
    ``member`` (the slide's CSV inside the archive), in the order of ``Camelyon16.csv``."""
    where = f"{archive.path}:{archive.index_name}"
    with archive.open(archive.index_name) as fh:
        table = pd.read_csv(fh, dtype=str)
    if table.shape[1] != 2 or "label" not in table.columns:
        raise ArchiveError(f"{where}: expected two columns (slide file, 'label'), found {list(table.columns)}")
    file_column = next(c for c in table.columns if c != "label")
    rows = []
    for k, (file, label) in enumerate(zip(table[file_column], table["label"], strict=True)):
        parts = PurePosixPath(str(file)).parts
        if len(parts) < 2 or not parts[-1].endswith(".csv"):
            raise ArchiveError(f"{where}, row {k + 2}: {file!r} is not a '<class folder>/<slide>.csv' path")
        if label not in ("0", "1"):
            raise ArchiveError(f"{where}, row {k + 2}: label {label!r} of {file} is not 0 (normal) or 1 (tumour)")
        member = (archive.root / parts[-2] / parts[-1]).as_posix()
        if member not in archive:
            raise ArchiveError(f"{where}, row {k + 2}: the slide file {member} is not in the archive")
        slide = parts[-1][: -len(".csv")]
        rows.append((slide, int(label), "test" if "test" in slide else "train", member))
    slides = pd.DataFrame(rows, columns=["slide", "label", "official_split", "member"])
    duplicated = slides.loc[slides["slide"].duplicated(), "slide"].tolist()
    if duplicated:
        raise ArchiveError(f"{where}: slides listed twice: {duplicated[:5]}")
    if slides.empty:
        raise ArchiveError(f"{where}: lists no slides")
    return slides


def iter_slide_features(archive: FeatureArchive, slides: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    """(slide, (patches, features) float32) for every slide, one at a time, checked."""
    n_features = None
    for row in slides.itertuples(index=False):
        where = f"{archive.path}:{row.member}"
        with archive.open(row.member) as fh:
            try:
                frame = pd.read_csv(fh, dtype=np.float32)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
                raise ArchiveError(f"{where}: not a table of numeric patch features ({err})") from err
        x = frame.to_numpy()
        if x.shape[0] == 0:
            raise ArchiveError(f"{where}: the slide has no patches; remove it from {INDEX_NAME}")
        if n_features is None:
            n_features = x.shape[1]
        elif x.shape[1] != n_features:
            raise ArchiveError(f"{where}: {x.shape[1]} feature columns, the slides before it have {n_features}")
        if not np.isfinite(x).all():
            r, c = np.argwhere(~np.isfinite(x))[0]
            raise ArchiveError(f"{where}: non-finite value at patch {r}, feature column {frame.columns[c]!r}")
        yield row.slide, x


def convert_to_h5ad(archive_path: str | Path, h5ad_path: str | Path, slides_path: str | Path) -> pd.DataFrame:
    """Write every patch of the archive into an AnnData ``.h5ad`` (X: patches x features, float32; obs:
    ``bag`` (categorical slide id) and ``patch`` (row within the slide's CSV)) and the slide table as TSV
    (``slide``, ``label``, ``official_split``, ``first_row``, ``n_instances``).

    The h5ad is written with h5py in AnnData's on-disk format, one slide at a time, because anndata's own
    writer needs the whole matrix in memory. Both files appear only when the conversion succeeded.
    """
    import h5py
    from anndata.io import write_elem

    with FeatureArchive(archive_path) as archive:
        slides = read_slide_table(archive)
        log.info("%s: %d slides (%s)", archive_path, len(slides), slides.groupby("official_split").size().to_dict())
        with atomic_path(h5ad_path) as tmp, h5py.File(tmp, "w") as f:
            _set_encoding(f, "anndata", "0.1.0")
            obs = f.create_group("obs")
            index = _growing(obs, "_index", h5py.string_dtype(), "string-array")
            codes = _growing(obs.create_group("bag"), "codes", np.int32, "array")
            patch = _growing(obs, "patch", np.int32, "array")
            x_data, first_rows, sizes, n_rows = None, [], [], 0
            for k, (slide, x) in enumerate(iter_slide_features(archive, slides)):
                if x_data is None:
                    x_data = f.create_dataset(
                        "X", shape=(0, x.shape[1]), maxshape=(None, x.shape[1]), dtype=np.float32,
                        chunks=(min(4096, max(1, x.shape[0])), x.shape[1]),
                    )  # fmt: skip
                    _set_encoding(x_data, "array", "0.2.0")
                    feature_names = [str(c) for c in range(x.shape[1])]
                stop = n_rows + x.shape[0]
                for dataset in (x_data, index, codes, patch):
                    dataset.resize(stop, axis=0)
                x_data[n_rows:stop] = x
                index[n_rows:stop] = np.array([f"{slide}:{i}" for i in range(x.shape[0])], dtype=object)
                codes[n_rows:stop] = k
                patch[n_rows:stop] = np.arange(x.shape[0], dtype=np.int32)
                first_rows.append(n_rows)
                sizes.append(x.shape[0])
                n_rows = stop
                if (k + 1) % max(1, len(slides) // 20) == 0 or k + 1 == len(slides):
                    log.info("converted %d / %d slides, %d patches", k + 1, len(slides), n_rows)
            bag = obs["bag"]
            _set_encoding(bag, "categorical", "0.2.0")
            bag.attrs["ordered"] = False
            bag.create_dataset("categories", data=slides["slide"].to_numpy(dtype=object), dtype=h5py.string_dtype())
            _set_encoding(bag["categories"], "string-array", "0.2.0")
            _set_encoding(obs, "dataframe", "0.2.0")
            obs.attrs["_index"] = "_index"
            obs.attrs["column-order"] = np.array(["bag", "patch"], dtype=object)
            # The small elements go through anndata's own writer.
            write_elem(f, "var", pd.DataFrame(index=pd.Index(feature_names)))
            write_elem(f, "uns", {"source": Path(archive_path).name})
            for name in ("obsm", "varm", "layers", "obsp", "varp"):
                write_elem(f, name, {})
    slides = slides.drop(columns="member").assign(first_row=first_rows, n_instances=sizes)
    with atomic_path(slides_path) as tmp:
        slides.to_csv(tmp, sep="\t", index=False)
    return slides


def _set_encoding(obj, kind: str, version: str) -> None:
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version


def _growing(group, name: str, dtype, encoding: str):
    dataset = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(65536,))
    _set_encoding(dataset, encoding, "0.2.0")
    return dataset
