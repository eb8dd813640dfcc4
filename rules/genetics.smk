# Genetics branch (paper Section 4.3), first stages: raw OneK1K-format data -> lymphoid cells with highly
# variable genes -> scVI embeddings; genotypes -> PLINK for the donors with cells -> genetic PCs; lead
# cis-eSNPs -> the variant universe matched to the VCF.


rule onek1k_demo:
    output:
        h5ad="resources/onek1k/demo/onek1k.h5ad",
        vcf="resources/onek1k/demo/OneK1K.noGP.vcf.gz",
        esnp=expand(
            "resources/onek1k/demo/esnp/{code}_esnp_table.tsv.gz",
            code=ONEK1K_ESNP_CODES,
        ),
        truth="resources/onek1k/demo/truth.tsv",
        samples="resources/onek1k/demo/samples.tsv",
    log:
        "logs/genetics/onek1k_demo.log",
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/genetics/demo.py"),
        demo=GENETICS["demo"],
        seed=derive_seed(config["seed"], "onek1k-demo"),
    script:
        "../scripts/genetics/demo.py"


rule download_onek1k:
    output:
        "resources/onek1k/download/{file}",
    log:
        "logs/genetics/download/{file}.log",
    wildcard_constraints:
        file="|".join(re.escape(name) for name in ONEK1K_DOWNLOADS),
    # The script retries and resumes by itself; a rule retry covers a crash of the job.
    retries: 1
    conda:
        "../envs/data.yaml"
    params:
        code=package_code("scripts/download.py"),
        source=onek1k_download_source,
        retries=5,
    script:
        "../scripts/download.py"


rule select_cells:
    input:
        onek1k_input("h5ad"),
    output:
        "results/genetics/cells/lymphoid_hvg.h5ad",
    log:
        "logs/genetics/select_cells.log",
    conda:
        "../envs/scvi.yaml"
    resources:
        mem_mb=memory_mb(2000, per_input_mb=4),
    params:
        code=package_code("scripts/genetics/select_cells.py"),
        n_top_genes=GENETICS["n_top_genes"],
    script:
        "../scripts/genetics/select_cells.py"


rule embed_scvi:
    input:
        "results/genetics/cells/lymphoid_hvg.h5ad",
    output:
        h5ad="results/genetics/cells/lymphoid_scvi.h5ad",
        model=directory("results/genetics/cells/scvi_model"),
    log:
        "logs/genetics/embed_scvi.log",
    benchmark:
        "logs/benchmarks/genetics/embed_scvi.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=memory_mb(3000, per_input_mb=3),
        runtime=runtime_minutes(240),
    params:
        code=package_code("scripts/genetics/embed_scvi.py"),
        scvi=GENETICS["scvi"],
        seed=derive_seed(config["seed"], "scvi"),
        device=config["device"],
    script:
        "../scripts/genetics/embed_scvi.py"


rule donor_genotypes:
    input:
        vcf=onek1k_input("vcf"),
        index=onek1k_vcf_index(),
        cells="results/genetics/cells/lymphoid_hvg.h5ad",
    output:
        multiext("results/genetics/genotypes/donors", ".bed", ".bim", ".fam"),
    log:
        "logs/genetics/donor_genotypes.log",
    benchmark:
        "logs/benchmarks/genetics/donor_genotypes.tsv"
    conda:
        "../envs/genetics.yaml"
    threads: 4
    resources:
        # PLINK streams the VCF into its binary format: memory does not grow with the VCF
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(240),
    params:
        code=package_code("scripts/genetics/donor_genotypes.py"),
    script:
        "../scripts/genetics/donor_genotypes.py"


rule genetic_pcs:
    input:
        multiext("results/genetics/genotypes/donors", ".bed", ".bim", ".fam"),
    output:
        "results/genetics/genotypes/genetic_pcs.tsv",
    log:
        "logs/genetics/genetic_pcs.log",
    benchmark:
        "logs/benchmarks/genetics/genetic_pcs.tsv"
    conda:
        "../envs/genetics.yaml"
    threads: 4
    resources:
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/genetics/genetic_pcs.py"),
        n_pcs=GENETICS["n_genetic_pcs"],
    script:
        "../scripts/genetics/genetic_pcs.py"


rule variant_universe:
    input:
        esnp=onek1k_esnp_tables,
        vcf=onek1k_input("vcf"),
    output:
        table="results/genetics/variants/universe.tsv",
        md="results/genetics/variants/universe_counts.md",
        html=report(
            "results/genetics/variants/universe_counts.html",
            caption="../report/variant_universe.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/variant_universe.log",
    benchmark:
        "logs/benchmarks/genetics/variant_universe.tsv"
    conda:
        "../envs/genetics.yaml"
    resources:
        # bcftools streams the VCF and hands Python only the universe's records: memory does not grow with it
        mem_mb=memory_mb(2000),
        runtime=runtime_minutes(240),
    params:
        code=package_code("scripts/genetics/variant_universe.py"),
        codes=GENETICS["esnp_cell_types"],
        max_fdr=GENETICS["max_fdr"],
        provenance=table_provenance([], genetics=genetics_settings("universe")),
    script:
        "../scripts/genetics/variant_universe.py"


rule donor_dosages:
    input:
        cells="results/genetics/cells/lymphoid_scvi.h5ad",
        vcf=onek1k_input("vcf"),
        index=onek1k_vcf_index(),
        universe="results/genetics/variants/universe.tsv",
        pcs="results/genetics/genotypes/genetic_pcs.tsv",
    output:
        donors="results/genetics/labels/donors.tsv",
        dosages="results/genetics/labels/universe_dosages.tsv.gz",
        means="results/genetics/labels/donor_mean_embeddings.npy",
    log:
        "logs/genetics/donor_dosages.log",
    benchmark:
        "logs/benchmarks/genetics/donor_dosages.tsv"
    conda:
        "../envs/genetics.yaml"
    resources:
        # the cells are read backed (obs and embeddings only) and bcftools selects the universe's records, so
        # neither the count matrix nor the VCF (12.7 GB for OneK1K) is held in memory
        mem_mb=memory_mb(4000),
        runtime=runtime_minutes(600),
    params:
        code=package_code("scripts/genetics/donor_dosages.py"),
    script:
        "../scripts/genetics/donor_dosages.py"


# The GLMM screen in chunks of variants (scattered jobs: about 3 s per variant, 16,718 variants in the
# paper), gathered in universe order; the result does not depend on the number of chunks.
rule screen_variant_chunk:
    input:
        donors="results/genetics/labels/donors.tsv",
        dosages="results/genetics/labels/universe_dosages.tsv.gz",
        means="results/genetics/labels/donor_mean_embeddings.npy",
    output:
        "results/genetics/labels/screen/chunk{chunk}.tsv",
    log:
        "logs/genetics/screen/chunk{chunk}.log",
    benchmark:
        "logs/benchmarks/genetics/screen/chunk{chunk}.tsv"
    group:
        cluster_group("variant_screens")
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        mem_mb=memory_mb(1500, per_input_mb=2),
        runtime=runtime_minutes(600),
    params:
        code=package_code("scripts/genetics/screen_chunk.py"),
        n_chunks=GENETICS_SCREEN_CHUNKS,
        n_folds=GENETICS["screen"]["n_folds"],
        seed=derive_seed(config["seed"], "glmm-screen"),
    script:
        "../scripts/genetics/screen_chunk.py"


rule screen_variants:
    input:
        chunks=expand(
            "results/genetics/labels/screen/chunk{chunk}.tsv",
            chunk=range(GENETICS_SCREEN_CHUNKS),
        ),
        universe="results/genetics/variants/universe.tsv",
    output:
        "results/genetics/labels/glmm_screen.tsv",
    log:
        "logs/genetics/screen_variants.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/genetics/screen_variants.py"),
        provenance=table_provenance([], genetics=genetics_settings("screen")),
    script:
        "../scripts/genetics/screen_variants.py"


rule clump_labels:
    input:
        screen="results/genetics/labels/glmm_screen.tsv",
        dosages="results/genetics/labels/universe_dosages.tsv.gz",
        bed=multiext("results/genetics/genotypes/donors", ".bed", ".bim", ".fam"),
    output:
        labels="results/genetics/labels/labels.tsv",
        dosages="results/genetics/labels/label_dosages.tsv",
        md="results/genetics/labels/labels.md",
        html=report(
            "results/genetics/labels/labels.html",
            caption="../report/genetic_labels.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/clump_labels.log",
    conda:
        "../envs/genetics.yaml"
    resources:
        mem_mb=memory_mb(2000),
    params:
        code=package_code("scripts/genetics/clump_labels.py"),
        min_spearman=GENETICS["screen"]["min_spearman"],
        r2=GENETICS["clump"]["r2"],
        kb=GENETICS["clump"]["kb"],
        provenance=table_provenance([], genetics=genetics_settings("labels")),
    script:
        "../scripts/genetics/clump_labels.py"


# Training (Section 4.3): bags = donors, instances = their cells' scVI embeddings; every label at once as
# the outputs of one model, 5-fold stacked cross-validation; covariates sex, age and the genetic PCs.
rule genetics_training_data:
    input:
        cells="results/genetics/cells/lymphoid_scvi.h5ad",
        donors="results/genetics/labels/donors.tsv",
        labels="results/genetics/labels/labels.tsv",
        screen="results/genetics/labels/glmm_screen.tsv",
        dosages="results/genetics/labels/universe_dosages.tsv.gz",
    output:
        matrix="results/genetics/training/data/instances.npy",
        table="results/genetics/training/data/bags.tsv",
        names="results/genetics/training/data/instance_names.tsv.gz",
        variants="results/genetics/training/data/variants.tsv",
    log:
        "logs/genetics/training_data.log",
    conda:
        "../envs/mil.yaml"
    resources:
        mem_mb=memory_mb(2000, per_input_mb=2),
    params:
        code=package_code("scripts/genetics/training_data.py"),
        covariates=GENETICS_COVARIATES,
        n_folds=len(GENETICS_FOLDS),
        n_controls=GENETICS["training"]["negative_controls"],
        min_spearman=GENETICS["screen"]["min_spearman"],
        fold_seed=derive_seed(config["seed"], "genetics-folds"),
        control_seed=derive_seed(config["seed"], "genetics-controls"),
    script:
        "../scripts/genetics/training_data.py"


rule fit_genetics:
    input:
        matrix="results/genetics/training/data/instances.npy",
        table="results/genetics/training/data/bags.tsv",
        variants="results/genetics/training/data/variants.tsv",
    output:
        **saved_model(
            "genetics", "results/genetics/training/models/{model}/fold{fold}.pt"
        ),
        predictions="results/genetics/training/predictions/{model}/fold{fold}.tsv",
        weights="results/genetics/training/weights/{model}/fold{fold}.npz",
    log:
        "logs/genetics/fit/{model}/fold{fold}.log",
    benchmark:
        "logs/benchmarks/genetics/fit/{model}/fold{fold}.tsv"
    conda:
        "../envs/mil.yaml"
    threads: lambda wc: model_threads(config["models"][wc.model])
    resources:
        gpu=lambda wc: model_gpus(config["models"][wc.model]),
        # OneK1K scale (1.2 M cells, 28 labels): 2.3 GB peak in benchmarks/onek1k_scale.py
        mem_mb=memory_mb(3000, per_input_mb=4),
        runtime=runtime_minutes(360),
    params:
        code=package_code("scripts/genetics/fit.py"),
        model=lambda wc: config["models"][wc.model],
        covariates=GENETICS_COVARIATES,
        seed=lambda wc: derive_seed(config["seed"], "genetics-fit", wc.model, wc.fold),
        device=config["device"],
    script:
        "../scripts/genetics/fit.py"


rule genetics_results:
    input:
        predictions=genetics_fit_files("predictions"),
        variants="results/genetics/training/data/variants.tsv",
    output:
        predictions="results/genetics/training/out_of_fold_predictions.tsv.gz",
        spearman="results/genetics/tables/spearman.tsv",
        wins="results/genetics/tables/fig3_wins.tsv",
        table_e2="results/genetics/tables/table_e2.tsv",
        table_e2_md="results/genetics/tables/table_e2.md",
        table_e2_html=report(
            "results/genetics/tables/table_e2.html",
            caption="../report/genetics_table_e2.rst",
            category="Genetics",
        ),
        figure=report(
            "results/genetics/figures/fig3_wins.png",
            caption="../report/genetics_fig3.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/results.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/genetics/results.py"),
        models=GENETICS_MODELS,
        n_folds=len(GENETICS_FOLDS),
        reference=GENETICS_REFERENCE,
        baselines=GENETICS_BASELINES,
        types={m: config["models"][m]["type"] for m in GENETICS_MODELS},
        provenance=table_provenance(GENETICS_MODELS, genetics=GENETICS),
    script:
        "../scripts/genetics/results.py"


rule genetics_planted_recovery:
    input:
        spearman="results/genetics/tables/spearman.tsv",
        variants="results/genetics/training/data/variants.tsv",
        truth="resources/onek1k/demo/truth.tsv",
    output:
        tsv="results/genetics/tables/planted_recovery.tsv",
        md="results/genetics/tables/planted_recovery.md",
        html=report(
            "results/genetics/tables/planted_recovery.html",
            caption="../report/genetics_planted_recovery.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/planted_recovery.log",
    conda:
        "../envs/report.yaml"
    params:
        code=package_code("scripts/genetics/planted_recovery.py"),
        models=GENETICS_MODELS,
        provenance=table_provenance(GENETICS_MODELS, genetics=GENETICS),
    script:
        "../scripts/genetics/planted_recovery.py"


rule genetics_cell_map:
    input:
        "results/genetics/cells/lymphoid_scvi.h5ad",
    output:
        table="results/genetics/cells/cell_map.tsv.gz",
        h5ad="results/genetics/cells/lymphoid_embeddings.h5ad",
    log:
        "logs/genetics/cell_map.log",
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        mem_mb=memory_mb(3000, per_input_mb=1),
    params:
        code=package_code("scripts/genetics/cell_map.py"),
        n_cells=GENETICS["cell_states"]["umap_cells"],
        n_neighbors=GENETICS["cell_states"]["umap_neighbors"],
        seed=derive_seed(config["seed"], "genetics-umap"),
    script:
        "../scripts/genetics/cell_map.py"


rule genetics_cell_states:
    input:
        weights=genetics_reference_weights,
        matrix="results/genetics/training/data/instances.npy",
        table="results/genetics/training/data/bags.tsv",
        names="results/genetics/training/data/instance_names.tsv.gz",
        cell_map="results/genetics/cells/cell_map.tsv.gz",
        spearman="results/genetics/tables/spearman.tsv",
        variants="results/genetics/training/data/variants.tsv",
    output:
        odds="results/genetics/tables/fig_e3_odds_ratios.tsv",
        odds_md="results/genetics/tables/fig_e3_odds_ratios.md",
        odds_html=report(
            "results/genetics/tables/fig_e3_odds_ratios.html",
            caption="../report/genetics_fig_e3.rst",
            category="Genetics",
        ),
        top_bottom="results/genetics/tables/fig_e3_top_bottom_glmm.tsv",
        figure=report(
            "results/genetics/figures/fig_e3_cell_states.png",
            caption="../report/genetics_fig_e3.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/cell_states.log",
    conda:
        "../envs/mil.yaml"
    resources:
        mem_mb=memory_mb(2000, per_input_mb=3),
    params:
        code=package_code("scripts/genetics/cell_states.py"),
        reference=GENETICS_REFERENCE,
        baselines=GENETICS_BASELINES,
        covariates=GENETICS_COVARIATES,
        settings=GENETICS["cell_states"],
        seed=derive_seed(config["seed"], "genetics-cell-states"),
        provenance=table_provenance(GENETICS_MODELS, genetics=GENETICS),
    script:
        "../scripts/genetics/cell_states.py"


rule genetics_costs:
    input:
        matrix="results/genetics/training/data/instances.npy",
        table="results/genetics/training/data/bags.tsv",
        variants="results/genetics/training/data/variants.tsv",
    output:
        tsv="results/genetics/tables/table1_costs.tsv",
        md="results/genetics/tables/table1_costs.md",
        html=report(
            "results/genetics/tables/table1_costs.html",
            caption="../report/genetics_table1.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/costs.log",
    benchmark:
        "logs/benchmarks/genetics/costs.tsv"
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=memory_mb(2000, per_input_mb=3),
        runtime=runtime_minutes(120),
    params:
        code=package_code("scripts/genetics/costs.py"),
        models=lambda wc: {m: config["models"][m] for m in GENETICS_COST_MODELS},
        covariates=GENETICS_COVARIATES,
        costs=COSTS,
        seed=derive_seed(config["seed"], "genetics-costs"),
        device=config["device"],
        provenance=table_provenance(
            GENETICS_COST_MODELS, genetics=GENETICS, costs=COSTS
        ),
    script:
        "../scripts/genetics/costs.py"
