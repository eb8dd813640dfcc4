"""Hyperparameters of every model type, as dataclasses (defaults written once, here).

Torch-free on purpose: the registry reads these fields when Snakemake parses the workflow, to reject a
hyperparameter a model type does not have before any job runs. Each model module imports its class from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INSTANCE_SCORES = ("contribution", "attention")  # Additive MIL's instance scores


@dataclass
class GLMMConfig:
    likelihood: str = "binomial"
    n_trials: int | None = None
    n_classes: int | None = None  # categorical: set from the labels by fit
    seed: int = 0
    pooling: str = "mean"  # "mean" (bag means) or "instance" (instances as rows, Table E.1)
    missing_labels: bool = False  # binomial / Bernoulli: NaN labels are left out of their output's fit


@dataclass
class MixMILConfig:
    """Hyperparameters; the defaults are the paper's (Section 3.4.2, Appendix A)."""

    likelihood: str = "binomial"
    n_trials: int | None = 2  # binomial only
    n_classes: int | None = None  # categorical only (inferred from the labels when None)
    missing_labels: bool = False  # binomial / Bernoulli: NaN marks a label not measured, left out of the ELBO
    posterior: str = "full_rank"  # or "mean_field"
    n_epochs: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    n_samples: int = 8  # posterior samples per step for the ELBO
    n_predictive_samples: int = 100  # frozen samples for Eq. 11 and credible intervals
    prior_var_gamma: float = 0.5  # initial sigma_gamma^2 (learned)
    posterior_sd_gamma: float = math.sqrt(0.1)  # initial posterior sd of gamma
    init: str = "glmm"  # "glmm" (start at the GLMM on mean embeddings) or "prior"
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when visible), "cpu" or "cuda" (falls back to the CPU)
    segment_backend: str = "torch"
    chunk_instances: int = 200_000  # at most this many instances scored at once in prediction
    # ... and at most this many instance x posterior-sample x output values (64 MB of float32 per tensor):
    # with 100 frozen samples and 28 outputs, 200,000 instances would need 2.2 GB per intermediate.
    chunk_values: int = 16_000_000
    progress: bool = True


@dataclass
class NeuralMILConfig:
    likelihood: str = "binomial"
    n_trials: int | None = 2
    n_classes: int | None = None
    lr: float = 5e-4
    weight_decay: float = 1e-4
    n_epochs: int = 100
    batch_size: int = 16  # bags per step (references use 1; minibatches make CPU training practical)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    # "likelihood": the labels' negative log-likelihood (BCE on y/n for Binomial(n)); "huber": Huber
    # regression of the label on the network output, the loss the paper's sweep selected (App. C.1).
    loss: str = "likelihood"


@dataclass
class AttentionMILConfig(NeuralMILConfig):
    gated: bool = False
    hidden_dim: int = 30  # instance encoder width (Table C.2: "Dim. Encoder" 30)
    attention_dim: int = 30  # L in Ilse et al.; 30 reproduces the paper's Table 1 parameter counts
    lr: float = 5e-4  # Table C.2
    weight_decay: float = 1e-4  # Table C.2


@dataclass
class DSMILConfig(NeuralMILConfig):
    hidden_dim: int = 30  # query network width (Table C.2: "Dim. Encoder" 30; the reference uses 128)
    lr: float = 2e-4  # Table C.2
    weight_decay: float = 5e-3  # Table C.2
    min_lr: float = 5e-6  # cosine annealing floor (reference)
    nonlinear_query: bool = False  # False: one linear query layer (reproduces Table 1's 992 parameters)


@dataclass
class BayesMILConfig(NeuralMILConfig):
    hidden_dim: int = 30  # encoder width (Table C.2: "Dim. Encoder" 30)
    attention_dim: int = 30  # width of the gated VDO attention (30 reproduces Table 1's parameter counts)
    lr: float = 5e-4  # Table C.2
    weight_decay: float = 1e-6  # Table C.2
    kl_weight: float = 1e-8  # Table C.2 "Regularization" (the reference's ARD-KL coefficient)
    dropout: float = 0.25  # the reference README trains with --drop_out (p = 0.25)
    mc_samples: int = 16  # stochastic passes averaged at prediction time (reference: 16); 0 = deterministic
    attention_ard_init: float = -1.0  # initial log alpha of the attention VDO layers (reference)
    classifier_ard_init: float = -3.0  # initial log alpha of the VDO classifier (reference)


@dataclass
class AdditiveMILConfig(NeuralMILConfig):
    hidden_dim: int = 100  # instance encoder width (Table C.6: "Dim. Encoder" 100)
    attention_dim: int = 100  # attention hidden size
    classifier_hidden_dim: int = 100  # hidden width of the instance-logit MLP psi
    lr: float = 5e-4  # Table C.6
    weight_decay: float = 1e-5  # Table C.6
    instance_score: str = "contribution"

    def __post_init__(self):
        if self.instance_score not in INSTANCE_SCORES:
            raise ValueError(f"instance_score must be one of {INSTANCE_SCORES}, got {self.instance_score!r}")


@dataclass
class MoMILConfig(NeuralMILConfig):
    likelihood: str = "bernoulli"
    n_trials: int | None = 1
    head: str = "dsmil"
    # The paper's schedule (Section 3): 100 epochs, 20 of linear warm-up, AdamW (lr from {1e-4, 5e-5,
    # 1e-5}, weight decay 5e-4), cosine annealing, early stopping with patience 10 on the validation mean
    # ROC-AUC, the best epoch kept; "dsmil": Adam (0.5, 0.9) + cosine for every epoch, as DSMIL's reference.
    schedule: str = "paper"
    n_epochs: int = 100
    warmup_epochs: int = 20
    patience: int = 10
    validation_fraction: float = 0.25  # the paper's 3-1-1 split: one part in four of train + val
    selection_tasks: list | None = None  # tasks whose mean validation AUC selects the epoch (default: all)
    projector_dim: int = 128  # shared projector width (the paper's search: 64, 128)
    dropout: float = 0.5
    hidden_dim: int = 128  # head width (the paper's search: 32, 64, 128): DSMIL query or ABMIL width
    lr: float = 1e-4
    weight_decay: float = 5e-4
    min_lr: float = 5e-6  # cosine annealing floor
    pos_weight: bool = False  # weight each task's positives by negatives / positives (observed labels)


@dataclass
class TreeMILConfig:
    kind: str = "random_forest"  # or "xgboost"
    pooling: str = "mean"  # mean, median, moments, instance
    likelihood: str = "binomial"
    n_trials: int | None = 2
    n_iter: int = 20  # random-search combinations (paper: 20)
    cv_folds: int = 5  # (paper: 5)
    n_jobs: int = 1  # parallel fits of the search's folds x combinations (with overrides alone: the trees' threads)
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # fixed hyperparameters (no search, unless search_space is set)
    learning_rate_sampling: str = "log_uniform"  # XGBoost: how Table C.4's learning rate is drawn (or "uniform")
    search_space: dict | None = None  # {hyperparameter: [values]} searched instead of Table C.3 / C.4
    progress: bool = True  # one line per fitted output (an instance-level search takes minutes to hours each)


@dataclass
class SMMILeConfig:
    form: str = "auto"  # binary, multiclass, multilabel; auto: from the likelihood and the labels' columns
    conv_kernel: int = 3  # 3: "small" (3 x 3 conv, D -> 128, attention 64); 1: "big" (1 x 1, D -> 512, 256)
    hidden_dim: int = 128
    attention_dim: int = 64
    dropout: float = 0.25
    lr: float = 2e-5  # reference configs
    weight_decay: float = 1e-5
    n_epochs_stage1: int = 40  # most epochs per stage (reference README); early stopping may end a stage sooner
    n_epochs_stage2: int = 20  # 0: stage 1 only (no refinement, no MRF)
    validation_fraction: float = 0.2  # training slides held out for early stopping; 0: fixed epochs, last weights
    patience_stage1: int = 20  # early stopping on the validation loss (reference: 20 / 50 epochs, not before
    stop_epoch_stage1: int = 50  # epoch 50 / 100); the best epoch's weights are kept
    patience_stage2: int = 50
    stop_epoch_stage2: int = 100
    lr_patience: int = 10  # ReduceLROnPlateau on the validation loss, factor 0.5
    instance_dropout: bool = True  # --drop_with_score, D = 1
    superpatch_groups: int = 10  # G; 0 turns delocalised sampling off
    superpatch_size: int = 16  # patches per SLIC superpatch (n_segments_persp)
    slic_compactness: float = 50.0
    sp_smooth: bool = False  # stage-1 patch scores: each patch gets its superpatch's mean sampled score
    consistency: bool = True  # negative slides (binary label 0, empty multi-label set)
    bag_loss: str = "bce"  # or "bibce": bi-tempered BCE (t1 0.2, t2 1) on the extra terms (reference multi-label)
    n_refs: int = 3
    instance_rate: float = 0.01  # inst_rate: share of a slide's patches that get pseudo-labels
    mrf_weight: float = 0.1  # tau; 0 turns the MRF term off
    weighted_sample: bool = True
    likelihood: str = "bernoulli"  # bernoulli (binary, multi-label: one column per category) or categorical
    n_trials: int | None = 1
    n_classes: int | None = None  # multiclass: categories (default: from the labels)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
