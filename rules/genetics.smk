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
        demo=GENETICS.get("demo", {}),
        seed=derive_seed(config["seed"], "onek1k-demo"),
    script:
        "../scripts/genetics/demo.py"


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
        mem_mb=lambda wc, input: int(2000 + 4 * input.size_mb),
    params:
        n_top_genes=GENETICS.get("n_top_genes", 5000),
    script:
        "../scripts/genetics/select_cells.py"


rule embed_scvi:
    input:
        "results/genetics/cells/lymphoid_hvg.h5ad",
    output:
        "results/genetics/cells/lymphoid_scvi.h5ad",
    log:
        "logs/genetics/embed_scvi.log",
    benchmark:
        "benchmarks/rules/genetics/embed_scvi.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wc, input: int(3000 + 3 * input.size_mb),
        runtime=240,
    params:
        scvi=GENETICS.get("scvi", {}),
        seed=derive_seed(config["seed"], "scvi"),
        device=config["device"],
    script:
        "../scripts/genetics/embed_scvi.py"


rule donor_genotypes:
    input:
        vcf=onek1k_input("vcf"),
        cells="results/genetics/cells/lymphoid_hvg.h5ad",
    output:
        multiext("results/genetics/genotypes/donors", ".bed", ".bim", ".fam"),
    log:
        "logs/genetics/donor_genotypes.log",
    conda:
        "../envs/genetics.yaml"
    resources:
        mem_mb=4000,
    script:
        "../scripts/genetics/donor_genotypes.py"


rule genetic_pcs:
    input:
        multiext("results/genetics/genotypes/donors", ".bed", ".bim", ".fam"),
    output:
        "results/genetics/genotypes/genetic_pcs.tsv",
    log:
        "logs/genetics/genetic_pcs.log",
    conda:
        "../envs/genetics.yaml"
    params:
        n_pcs=GENETICS.get("n_genetic_pcs", 4),
    script:
        "../scripts/genetics/genetic_pcs.py"


rule variant_universe:
    input:
        esnp=onek1k_esnp_tables,
        vcf=onek1k_input("vcf"),
    output:
        table="results/genetics/variants/universe.tsv",
        md=report(
            "results/genetics/variants/universe_counts.md",
            caption="../report/variant_universe.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/variant_universe.log",
    conda:
        "../envs/data.yaml"
    params:
        codes=GENETICS.get("esnp_cell_types", []),
        max_fdr=GENETICS.get("max_fdr", 0.05),
        provenance=table_provenance([], genetics=GENETICS),
    script:
        "../scripts/genetics/variant_universe.py"


rule screen_variants:
    input:
        cells="results/genetics/cells/lymphoid_scvi.h5ad",
        vcf=onek1k_input("vcf"),
        universe="results/genetics/variants/universe.tsv",
        pcs="results/genetics/genotypes/genetic_pcs.tsv",
    output:
        screen="results/genetics/labels/glmm_screen.tsv",
        donors="results/genetics/labels/donors.tsv",
        dosages="results/genetics/labels/universe_dosages.tsv.gz",
    log:
        "logs/genetics/screen_variants.log",
    benchmark:
        "benchmarks/rules/genetics/screen_variants.tsv"
    conda:
        "../envs/mil.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input: int(2000 + 2 * input.size_mb),
        runtime=600,
    params:
        n_folds=GENETICS.get("screen", {}).get("n_folds", 5),
        seed=derive_seed(config["seed"], "glmm-screen"),
        provenance=table_provenance([], genetics=GENETICS),
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
        md=report(
            "results/genetics/labels/labels.md",
            caption="../report/genetic_labels.rst",
            category="Genetics",
        ),
    log:
        "logs/genetics/clump_labels.log",
    conda:
        "../envs/genetics.yaml"
    params:
        min_spearman=GENETICS.get("screen", {}).get("min_spearman", 0.15),
        r2=GENETICS.get("clump", {}).get("r2", 0.1),
        kb=GENETICS.get("clump", {}).get("kb", 1000),
        provenance=table_provenance([], genetics=GENETICS),
    script:
        "../scripts/genetics/clump_labels.py"
