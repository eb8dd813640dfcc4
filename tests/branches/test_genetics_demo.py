"""The generated OneK1K raw data: the real sources' formats, the donor join, and the planted effects."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from mixmil_workflow.genetics.demo import (
    BUILD_SHIFT,
    ESNP_COLUMNS,
    LYMPHOID_CELL_TYPES,
    LYMPHOID_ESNP_CODES,
    OneK1KDemoSpec,
    write_onek1k_demo,
)

SPEC = OneK1KDemoSpec(n_donors=40, n_genotyped_only=4, mean_cells=40, n_genes=150, n_null=6)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("onek1k")
    return out, write_onek1k_demo(out, SPEC, seed=3)


def read_vcf(path):
    with gzip.open(path, "rt") as fh:
        lines = [line.rstrip("\n") for line in fh]
    header = next(line for line in lines if line.startswith("#CHROM")).lstrip("#").split("\t")
    records = pd.DataFrame([line.split("\t") for line in lines if not line.startswith("#")], columns=header)
    return lines, records


def test_h5ad_has_the_cellxgene_layout_and_columns(demo):
    import anndata

    _, paths = demo
    adata = anndata.read_h5ad(paths["h5ad"])
    for column in ("donor_id", "pool_number", "cell_type", "sex", "age", "predicted.celltype.l2", "assay"):
        assert column in adata.obs, column
    assert adata.uns["schema_version"].startswith("7.")
    assert adata.var_names.str.match(r"ENSG\d{11}$").all() and "feature_name" in adata.var
    x = adata.X.toarray()
    assert x.dtype == np.float32 and np.array_equal(x, np.round(x)) and (x >= 0).all()
    assert adata.obs["donor_id"].astype(str).str.fullmatch(r"\d+_\d+").all()
    assert adata.obs["donor_id"].nunique() == SPEC.n_donors
    types = set(adata.obs["cell_type"])
    assert types & set(LYMPHOID_CELL_TYPES) and types - set(LYMPHOID_CELL_TYPES)  # others to filter out
    assert set(adata.obs["sex"]) == {"male", "female"}


def test_vcf_is_bgzf_with_the_real_sample_naming_and_joins_every_donor(demo):
    import anndata

    _, paths = demo
    lines, records = read_vcf(paths["vcf"])
    assert lines[0] == "##fileformat=VCFv4.2"
    samples = list(records.columns[9:])
    assert all(re.fullmatch(r"OneK1K_\d+", s) for s in samples)
    assert len(samples) == SPEC.n_donors + SPEC.n_genotyped_only
    donors = anndata.read_h5ad(paths["h5ad"], backed="r").obs["donor_id"].astype(str).unique()
    joined = {"OneK1K_" + d.split("_")[1] for d in donors}  # the cellink join rule
    assert joined <= set(samples)
    chrom_pos = records[["CHROM", "POS"]].astype(int)
    assert chrom_pos.equals(chrom_pos.sort_values(["CHROM", "POS"]))  # sorted, as an indexable VCF must be
    assert records["FORMAT"].eq("GT:DS").all() and records["INFO"].str.contains("TYPED|IMPUTED").all()
    if shutil.which("bcftools"):  # htslib refuses to index anything that is not BGZF
        subprocess.run(["bcftools", "index", "--tbi", str(paths["vcf"])], check=True)


def test_plink_reads_the_vcf(demo, tmp_path):
    plink = shutil.which("plink1.9") or shutil.which("plink")
    if plink is None:
        pytest.skip("plink1.9 not installed (apt-get install plink1.9)")
    _, paths = demo
    out = tmp_path / "demo"
    subprocess.run(
        [plink, "--vcf", str(paths["vcf"]), "--double-id", "--make-bed", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    _, records = read_vcf(paths["vcf"])
    bim = pd.read_csv(f"{out}.bim", sep="\t", header=None)
    assert list(bim[1]) == list(records["ID"])


def test_esnp_tables_have_the_bucket_columns_grch37_positions_and_lymphoid_codes(demo):
    out, paths = demo
    truth = pd.read_csv(paths["truth"], sep="\t").set_index("rsid")
    tables = {p.name.split("_esnp")[0]: pd.read_csv(p, sep="\t") for p in sorted(paths["esnp"].glob("*.tsv.gz"))}
    assert set(LYMPHOID_ESNP_CODES) <= set(tables)
    for code, table in tables.items():
        assert list(table.columns) == ESNP_COLUMNS, code
        assert (table["POS"] == truth.loc[table["RSID"], "pos_grch38"].to_numpy() - BUILD_SHIFT).all()
    lymphoid = pd.concat([t for c, t in tables.items() if c in LYMPHOID_ESNP_CODES])
    roles = truth.loc[lymphoid["RSID"].unique(), "role"]
    assert "other_celltype" not in set(roles)
    assert {"planted", "proxy", "no_effect"} <= set(roles)
    other = pd.concat([t for c, t in tables.items() if c not in LYMPHOID_ESNP_CODES])
    assert set(truth.loc[other["RSID"], "role"]) == {"other_celltype"}


def test_planted_variants_shift_cell_states_and_proxies_are_in_ld(demo):
    import anndata

    _, paths = demo
    truth = pd.read_csv(paths["truth"], sep="\t")
    _, records = read_vcf(paths["vcf"])
    dosage = records.set_index("ID").iloc[:, 8:].apply(lambda col: col.str.split(":").str[1].astype(float)).T
    for proxy in truth[truth["role"] == "proxy"].itertuples():
        r = np.corrcoef(dosage[proxy.rsid], dosage[proxy.lead])[0, 1]
        assert r**2 > 0.6, (proxy.rsid, r)
    # In the planted variant's group, the state's module genes rise with the donor's dosage.
    adata = anndata.read_h5ad(paths["h5ad"])
    x = adata.X.toarray()
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    obs = adata.obs.assign(sample="OneK1K_" + adata.obs["donor_id"].astype(str).str.split("_").str[1])
    group = obs["cell_type"].astype(str).map(LYMPHOID_CELL_TYPES).fillna("")
    for planted in truth[truth["role"] == "planted"].itertuples():
        module = adata.var_names.get_indexer(planted.module_genes.split(","))
        cells = (group == planted.group).to_numpy()
        score = pd.Series(x[np.ix_(cells, module)].mean(1)).groupby(obs.loc[cells, "sample"].to_numpy()).mean()
        rho = spearmanr(score, dosage.loc[score.index, planted.rsid])[0]
        assert rho > 0.3, (planted.rsid, rho)


def test_same_seed_same_files(tmp_path):
    small = OneK1KDemoSpec(n_donors=8, n_genotyped_only=1, mean_cells=10, n_genes=40, n_null=2)
    a = write_onek1k_demo(tmp_path / "a", small, seed=1)
    b = write_onek1k_demo(tmp_path / "b", small, seed=1)
    for key in ("vcf", "truth"):
        assert a[key].read_bytes() == b[key].read_bytes(), key
    for table in a["esnp"].glob("*.tsv.gz"):
        assert gzip.decompress(table.read_bytes()) == gzip.decompress((b["esnp"] / table.name).read_bytes())


def test_plink_conversion_and_genetic_pcs_find_the_ancestry_structure(demo, tmp_path):
    if shutil.which("plink1.9") is None and shutil.which("plink") is None:
        pytest.skip("plink1.9 not installed (apt-get install plink1.9)")
    from mixmil_workflow.genetics.plink import PlinkError, genetic_pcs, vcf_to_bed

    _, paths = demo
    samples = pd.read_csv(paths["samples"], sep="\t")
    donors = samples.loc[samples["has_cells"], "sample"]
    fam = vcf_to_bed(paths["vcf"], donors, tmp_path / "geno" / "donors")
    assert list(fam["iid"]) == sorted(donors, key=list(samples["sample"]).index)  # VCF order, donors only
    pcs = genetic_pcs(tmp_path / "geno" / "donors", tmp_path / "geno" / "pcs", n_pcs=4)
    assert list(pcs.columns) == ["PC1", "PC2", "PC3", "PC4"] and set(pcs.index) == set(donors)
    ancestry = samples.set_index("sample").loc[pcs.index, "ancestry"]
    assert abs(np.corrcoef(pcs["PC1"], ancestry)[0, 1]) > 0.7
    with pytest.raises(PlinkError, match="not among the VCF samples"):
        vcf_to_bed(paths["vcf"], [*donors, "OneK1K_999999"], tmp_path / "bad" / "donors")


def test_variant_universe_joins_the_vcf_by_rsid_and_drops_what_does_not_match(demo, tmp_path):
    from mixmil_workflow.genetics.variants import (
        VariantError,
        match_to_vcf,
        read_esnp_tables,
        variant_universe,
    )

    _, paths = demo
    truth = pd.read_csv(paths["truth"], sep="\t").set_index("rsid")
    tables = {code: paths["esnp"] / f"{code}_esnp_table.tsv.gz" for code in LYMPHOID_ESNP_CODES}
    universe = variant_universe(read_esnp_tables(tables))
    assert universe["rsid"].is_unique
    expected = truth.index[truth["role"].isin(["planted", "proxy", "no_effect"])]
    assert set(universe["rsid"]) == set(expected)  # background and other cell types excluded
    kept, counts = match_to_vcf(universe, paths["vcf"])
    assert counts == {"universe": len(expected), "in_vcf": len(expected), "allele_mismatch": 0, "kept": len(expected)}
    assert (kept.set_index("rsid")["pos"] == truth.loc[kept["rsid"], "pos_grch38"]).all()
    # A variant missing from the VCF and one with other alleles are dropped and counted.
    extra = universe.iloc[:2].copy()
    extra.loc[extra.index[0], "rsid"] = "rs1"
    extra.loc[extra.index[1], ["a1", "a2"]] = ["Z", "Q"]
    _, counts = match_to_vcf(pd.concat([universe.iloc[2:], extra]), paths["vcf"])
    assert counts["universe"] == len(universe) and counts["in_vcf"] == len(universe) - 1
    assert counts["allele_mismatch"] == 1
    # A table without the required columns names the file and the columns.
    bad = tmp_path / "bad_esnp_table.tsv.gz"
    pd.read_csv(tables["cd4nc"], sep="\t").drop(columns=["FDR"]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(VariantError, match=r"bad_esnp_table.tsv.gz: missing columns \['FDR'\]"):
        read_esnp_tables({"cd4nc": bad})


def test_lymphoid_selection_hvg_and_scvi_embedding(demo, tmp_path):
    import anndata

    from mixmil_workflow.genetics.cells import (
        CellDataError,
        ScviSettings,
        donor_covariates,
        highly_variable_genes,
        scvi_embedding,
        select_lymphoid,
    )

    _, paths = demo
    adata = anndata.read_h5ad(paths["h5ad"])
    cells = select_lymphoid(adata, "onek1k.h5ad")
    assert set(cells.obs["cell_group"]) == {"CD4", "CD8", "NK"}
    assert cells.n_obs == adata.obs["cell_type"].astype(str).isin(LYMPHOID_CELL_TYPES).sum()
    assert cells.uns["counts_layout"] == "X"
    # The older CELLxGENE layout: normalised values in X, counts in raw.X.
    older = adata.copy()
    older.raw = adata.copy()
    older.X = older.X.multiply(1 / older.X.sum(1)).tocsr() * 1e4
    from_raw = select_lymphoid(older, "older.h5ad")
    assert from_raw.uns["counts_layout"] == "raw.X" and (from_raw.X != cells.X).nnz == 0
    # Read backed (as the rule does, so the real 1.25 M-cell file never sits in memory whole): same cells.
    older.write_h5ad(tmp_path / "older.h5ad")
    backed = select_lymphoid(anndata.read_h5ad(tmp_path / "older.h5ad", backed="r"), "older.h5ad")
    assert not backed.isbacked and (backed.X != cells.X).nnz == 0 and backed.obs.equals(cells.obs)
    hvg = highly_variable_genes(cells.copy(), n_top_genes=60)
    assert hvg.n_vars == 60
    latent = scvi_embedding(hvg, ScviSettings(n_latent=5, max_epochs=2, batch_size=256), seed=0, accelerator="cpu")
    assert latent.shape == (hvg.n_obs, 5) and np.isfinite(latent).all()
    model_dir = tmp_path / "scvi_model"
    again = scvi_embedding(
        hvg, ScviSettings(n_latent=5, max_epochs=2, batch_size=256), seed=0, accelerator="cpu", model_dir=model_dir
    )
    np.testing.assert_allclose(latent, again, atol=1e-5)  # seeded
    # the saved model loads with scvi-tools and gives the same latent space
    import scvi

    loaded = scvi.model.SCVI.load(str(model_dir), adata=hvg, accelerator="cpu")
    np.testing.assert_allclose(loaded.get_latent_representation(), again, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".scvi_model")] == []  # no staging left
    covariates = donor_covariates(cells.obs)
    assert len(covariates) == SPEC.n_donors and set(covariates["sex"]) == {0, 1}
    with pytest.raises(CellDataError, match="obs lacks \\['pool_number'\\]"):
        select_lymphoid(adata[:, :5].copy().__class__(X=adata.X, obs=adata.obs.drop(columns="pool_number")), "x")


def test_glmm_screen_keeps_planted_variants_and_clumping_drops_their_proxies(tmp_path):
    if shutil.which("plink1.9") is None and shutil.which("plink") is None:
        pytest.skip("plink1.9 not installed (apt-get install plink1.9)")
    import anndata

    from mixmil_workflow.genetics.cells import select_lymphoid
    from mixmil_workflow.genetics.labels import (
        donor_mean_embeddings,
        donor_table,
        glmm_screen,
    )
    from mixmil_workflow.genetics.plink import clump, genetic_pcs, vcf_to_bed
    from mixmil_workflow.genetics.vcf import read_dosages

    spec = OneK1KDemoSpec(n_donors=150, mean_cells=50, n_genes=120, n_null=10, n_background=300, effect=1.5)
    paths = write_onek1k_demo(tmp_path / "raw", spec, seed=5)
    truth = pd.read_csv(paths["truth"], sep="\t")
    cells = select_lymphoid(anndata.read_h5ad(paths["h5ad"]), "onek1k.h5ad")
    # Embeddings: 10 principal components of log-normalised expression stand in for scVI here (the
    # rule uses scVI; this keeps the test to seconds).
    from sklearn.decomposition import PCA

    x = cells.X.toarray()
    embedding = PCA(10, random_state=0).fit_transform(np.log1p(x / x.sum(1, keepdims=True) * 1e4))
    samples = sorted({"OneK1K_" + d.split("_")[1] for d in cells.obs["donor_id"]})
    vcf_to_bed(paths["vcf"], samples, tmp_path / "geno" / "donors")
    pcs = genetic_pcs(tmp_path / "geno" / "donors", tmp_path / "geno" / "pcs", n_pcs=4)
    donors = donor_table(cells.obs, pcs)
    means = donor_mean_embeddings(embedding, cells.obs["donor_id"], donors.index)
    tested = truth[truth["role"].isin(["planted", "proxy", "no_effect"])]
    dosages = read_dosages(paths["vcf"], tested["rsid"], list(donors["sample"]))
    assert dosages.isin([0, 1, 2]).all().all() and list(dosages.index) == list(donors["sample"])
    covariates = donors[["sex", "age", "PC1", "PC2", "PC3", "PC4"]].to_numpy(float)
    screen = glmm_screen(means, dosages, covariates, n_folds=5, seed=0).merge(truth, on="rsid")
    planted = screen[screen["role"] == "planted"]
    assert (planted["spearman"] > 0.15).all(), planted[["rsid", "group", "spearman"]]
    assert screen.loc[screen["role"] == "no_effect", "spearman"].median() < 0.1
    kept = screen[screen["spearman"] > 0.15]
    index = clump(tmp_path / "geno" / "donors", kept, tmp_path / "geno" / "clump", r2=0.1, kb=1000)
    roles = truth.set_index("rsid").loc[index, "role"]
    # One variant per planted locus survives (the planted one or one of its proxies), never two.
    locus = truth.set_index("rsid").apply(lambda r: r["lead"] if r["role"] == "proxy" else r.name, axis=1)
    planted_loci = locus.loc[[r for r in index if roles[r] in ("planted", "proxy")]]
    assert planted_loci.is_unique and set(planted_loci) == set(planted["rsid"])


def test_dosages_read_through_the_vcf_index_equal_the_full_scan(demo, tmp_path):
    """bcftools selects the variants by ID while streaming, or by position through the index; both give
    the allele counts of a plain reading of the VCF text, in the samples' order asked for."""
    if shutil.which("bcftools") is None:
        pytest.skip("bcftools not installed (apt-get install bcftools)")
    import gzip

    from mixmil_workflow.genetics.vcf import VcfError, read_dosages, vcf_index, vcf_sites

    _, paths = demo
    vcf = tmp_path / "OneK1K.noGP.vcf.gz"
    shutil.copy(paths["vcf"], vcf)
    truth = pd.read_csv(paths["truth"], sep="\t").rename(columns={"pos_grch38": "pos"})
    samples = pd.read_csv(paths["samples"], sep="\t")["sample"].tolist()[:25][::-1]  # not the VCF's order
    wanted = truth.iloc[::3]
    scanned = read_dosages(vcf, wanted["rsid"], samples, positions=wanted[["chrom", "pos"]])  # no index yet
    assert list(scanned.index) == samples and list(scanned.columns) == list(wanted["rsid"])
    # the same numbers as reading the records' text directly (GT: count of non-reference alleles)
    with gzip.open(vcf, "rt") as fh:
        lines = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("##")]
    header, records = lines[0], {fields[2]: fields for fields in lines[1:]}
    for rsid in wanted["rsid"][:5]:
        for sample in samples[:5]:
            call = records[rsid][header.index(sample)].split(":")[0]
            expected = sum(int(a) > 0 for a in call.replace("|", "/").split("/"))
            assert scanned.loc[sample, rsid] == expected, (rsid, sample, call)
    subprocess.run(["bcftools", "index", "--csi", str(vcf)], check=True)
    assert vcf_index(vcf) == tmp_path / "OneK1K.noGP.vcf.gz.csi"
    indexed = read_dosages(vcf, wanted["rsid"], samples, positions=wanted[["chrom", "pos"]])
    pd.testing.assert_frame_equal(indexed, scanned)
    # Only the given positions are read: a variant whose position is not asked for is not found.
    with pytest.raises(VcfError, match="1 variant\\(s\\) not found"):
        read_dosages(vcf, wanted["rsid"], samples, positions=wanted[["chrom", "pos"]].iloc[1:])
    with pytest.raises(VcfError, match="samples \\['nobody'\\] are not in the VCF"):
        read_dosages(vcf, wanted["rsid"], ["nobody"])
    sites = vcf_sites(vcf, wanted["rsid"])
    assert list(sites["rsid"]) == list(wanted.sort_values(["chrom", "pos"])["rsid"]) or set(sites["rsid"]) == set(
        wanted["rsid"]
    )
