"""BBBC021 metadata: fields of view of the MoA subset, wells (bags) with the held-out plate of each
repeat, and the nucleus centres of those fields."""

from mixmil_workflow.workflow import job  # noqa: F401, I001  (first: the job sees only its own env)
from mixmil_workflow.io import log_to, save_table, save_tsv_gz
from mixmil_workflow.microscopy.bbbc021 import (
    MicroscopyError,
    add_structures,
    held_out_plates,
    read_image_table,
    read_nucleus_locations,
    well_table,
)

snakemake = snakemake  # noqa: F821  (injected by Snakemake)

with log_to(snakemake.log[0]):
    params = snakemake.params
    images = read_image_table(snakemake.input.image, snakemake.input.moa, params.exclude_moas)
    found = set(images["plate"])
    missing = sorted(set(params.plates) - found)
    if missing:
        print(f"note: configured plates without MoA wells (not used): {missing}")
    images = images[images["plate"].isin(params.plates)].reset_index(drop=True)
    if images.empty:
        raise MicroscopyError(
            f"{snakemake.input.image}: none of the configured plates {params.plates[:5]} has MoA wells "
            f"(plates in the table: {sorted(found)[:5]}...); check microscopy.plates"
        )
    wells = held_out_plates(well_table(images), params.n_repeats, params.seed)
    wells = add_structures(wells, snakemake.input.compound)
    nuclei = read_nucleus_locations(snakemake.input.nuclei, images)
    per_image = nuclei.groupby(["plate", "well", "site"]).size()
    print(
        f"{len(images)} fields of view, {len(wells)} wells, {wells['compound'].nunique()} compounds, "
        f"{wells['moa'].nunique()} MoAs on {wells['plate'].nunique()} plates; {len(nuclei)} nuclei "
        f"({per_image.mean():.1f} per field; {len(images) - len(per_image)} fields without nuclei)"
    )
    save_table(snakemake.output.images, images)
    save_table(snakemake.output.wells, wells)
    save_tsv_gz(snakemake.output.nuclei, nuclei)
    split_columns = [c for c in wells.columns if c.startswith("split_r")]
    summary = wells.groupby("moa").agg(
        wells=("bag", "size"),
        compounds=("compound", "nunique"),
        plates=("plate", "nunique"),
        **{f"test wells {c.removeprefix('split_')}": (c, lambda s: int((s == "test").sum())) for c in split_columns},
    )
    save_table(snakemake.output.summary, summary.reset_index())
