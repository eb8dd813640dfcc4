# The plan of the genetics branch (rules/genetics.smk): its settings, runs, seeds, targets and input functions.


GENETICS = config["genetics"]
ONEK1K_ESNP_CODES = [*LYMPHOID_ESNP_CODES, *OTHER_ESNP_CODES]


# The downloaded OneK1K files (flat under resources/onek1k/download/) and their rows in the source sheet.
ONEK1K_DOWNLOADS = {
    "onek1k.h5ad": "onek1k_h5ad",
    "OneK1K.noGP.vcf.gz": "onek1k_vcf",
    "OneK1K.noGP.vcf.gz.csi": "onek1k_vcf_csi",
    **{
        f"{code}_esnp_table.tsv.gz": f"onek1k_esnp_{code}"
        for code in LYMPHOID_ESNP_CODES
    },
}


def onek1k_root():
    return (
        "resources/onek1k/download"
        if GENETICS["source"] == "download"
        else "resources/onek1k/demo"
    )


def onek1k_input(kind):
    """The raw OneK1K file of this kind (h5ad, vcf, csi) for the configured source."""
    name = {
        "h5ad": "onek1k.h5ad",
        "vcf": "OneK1K.noGP.vcf.gz",
        "csi": "OneK1K.noGP.vcf.gz.csi",
    }[kind]
    return f"{onek1k_root()}/{name}"


def onek1k_vcf_index():
    """The downloaded VCF's index (fetched and checked with the VCF; the demo has none)."""
    return [onek1k_input("csi")] if GENETICS.get("source") == "download" else []


def onek1k_esnp_tables(wildcards=None):
    # downloads are flat (one wildcard level); the demo keeps the bucket's esnp/ folder
    folder = "" if GENETICS.get("source") == "download" else "esnp/"
    return [
        f"{onek1k_root()}/{folder}{code}_esnp_table.tsv.gz"
        for code in GENETICS["esnp_cell_types"]
    ]


def onek1k_download_source(wildcards):
    """The source-sheet row of one OneK1K file; as a parameter of the download, a changed URL or
    checksum reruns it."""
    sheet = GENETICS["sheet"]
    sources = read_source_sheet(Path(workflow.basedir) / sheet)
    row = ONEK1K_DOWNLOADS[wildcards.file]
    if row not in sources:
        raise ValueError(
            f"{sheet}: no row for source {row!r} (needed for resources/onek1k/download/{wildcards.file}); "
            "add it with its url and, where published, sha256"
        )
    return vars(sources[row])


# The genetics settings each stage depends on, so that a provenance digest (and a rerun) follows only
# the settings upstream of a table: editing cell_states must not rerun the variant universe.
GENETICS_STAGE_KEYS = {
    "universe": ["source", "demo", "esnp_cell_types", "max_fdr"],
    "screen": ["n_top_genes", "scvi", "n_genetic_pcs", "screen"],
    "labels": ["clump"],
}


def genetics_settings(stage):
    """The genetics config of ``stage`` and every stage before it (universe, screen, labels), or all."""
    if stage == "all":
        return GENETICS
    keys = []
    for name, stage_keys in GENETICS_STAGE_KEYS.items():
        keys += stage_keys
        if name == stage:
            break
    return {k: GENETICS[k] for k in keys if k in GENETICS}


GENETICS_SCREEN_CHUNKS = GENETICS["screen"]["n_chunks"]
GENETICS_MODELS, GENETICS_REFERENCE = genetics_models(GENETICS, config["models"])
GENETICS_BASELINES = genetics_baselines(GENETICS_MODELS, config["models"])
GENETICS_FOLDS = list(range(GENETICS["training"]["n_folds"]))
GENETICS_COVARIATES = genetics_covariates(GENETICS["n_genetic_pcs"])
# Table 1 at OneK1K scale: the minibatch-trained MIL models among the genetics models.
GENETICS_COST_MODELS = [
    m for m in GENETICS_MODELS if spec_type(config["models"][m]).minibatch
]


def genetics_fit_files(kind):
    """Every model x fold output of fit_genetics (kind: predictions or weights)."""
    suffix = "tsv" if kind == "predictions" else "npz"
    return expand(
        f"results/genetics/training/{kind}/{{model}}/fold{{fold}}.{suffix}",
        model=GENETICS_MODELS,
        fold=GENETICS_FOLDS,
    )


def genetics_reference_weights(wildcards=None):
    return expand(
        "results/genetics/training/weights/{model}/fold{fold}.npz",
        model=GENETICS_REFERENCE,
        fold=GENETICS_FOLDS,
    )


def genetics_outputs():
    if not GENETICS["activate"]:
        return []
    out = [
        "results/genetics/cells/lymphoid_scvi.h5ad",
        "results/genetics/genotypes/genetic_pcs.tsv",
        "results/genetics/variants/universe.tsv",
        "results/genetics/variants/universe_counts.md",
        "results/genetics/labels/labels.md",
        "results/genetics/labels/label_dosages.tsv",
    ]
    if not GENETICS_MODELS:
        return out
    out += [
        "results/genetics/tables/spearman.tsv",
        "results/genetics/tables/table_e2.md",
        "results/genetics/figures/fig3_wins.png",
        "results/genetics/figures/fig_e3_cell_states.png",
        "results/genetics/tables/fig_e3_odds_ratios.md",
    ]
    if GENETICS_COST_MODELS:
        out.append("results/genetics/tables/table1_costs.md")
    if GENETICS["source"] == "demo":
        out.append("results/genetics/tables/planted_recovery.md")
    return out
