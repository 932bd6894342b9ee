"""The ``[federated]`` section of a TOML file and the whole federated experiment file.

A federated experiment file is an experiment file (``[data]``, ``[features]``, ``[model]``,
``[train]``) plus ``[federated]``; ``[train]`` is the *local* training of each site in each
round (``epochs`` is ignored: ``local_epochs`` counts them), ``[federated.privacy]`` turns on
per-site DP-SGD. ``[data]`` names ``dataset`` and ``task`` (required, no default) like the
runner's config, ``train`` (the set the sites are drawn from) and optionally ``test``;
``[federated] partition`` names one of the dataset spec's partitions. A dataset whose spec
has no partitions (or no federated featurizer fit) is refused here, with the spec's
sentence. Unknown keys raise, naming the section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medseq.schema import check_known_keys

STRATEGIES = ("fedavg", "fedprox")
#: Task types a federated run selects rounds for (by the sites' mean validation AUROC).
TASK_TYPES = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class PrivacyConfig:
    """Per-site DP-SGD (Opacus): the noise is calibrated so that the whole federated run
    (``rounds * local_epochs`` epochs of the site's data) spends at most ``target_epsilon``."""

    target_epsilon: float = 8.0
    target_delta: float | None = None  # default: 1 / (10 * site training subjects)
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.target_epsilon > 0:
            raise ValueError(
                f"[federated.privacy] target_epsilon must be > 0, got {self.target_epsilon}"
            )
        if self.target_delta is not None and not 0 < self.target_delta < 1:
            raise ValueError(
                f"[federated.privacy] target_delta must be in (0, 1), got {self.target_delta}"
            )
        if not self.max_grad_norm > 0:
            raise ValueError(
                f"[federated.privacy] max_grad_norm must be > 0, got {self.max_grad_norm}"
            )


@dataclass(frozen=True)
class FederatedConfig:
    """Sites, strategy and rounds of a federated run.

    Parameters
    ----------
    partition : str
        One of the dataset spec's ``partitions`` (e.g. ``"icu_type"``, ``"dirichlet"``,
        ``"scaffold"``); required, checked against the spec when the file is parsed.
    n_sites : int, default=4
        For partitions that draw sites (Dirichlet, IID, groups); a partition by a real
        column ignores it.
    dirichlet_alpha : float, default=0.5
        Concentration of a Dirichlet label-skew partition (small: skewed sites).
    strategy : {"fedavg", "fedprox"}, default="fedavg"
    proximal_mu : float, default=0.01
        FedProx's μ: each site's loss gets ``mu / 2 * ||w - w_global||^2``.
    rounds : int, default=20
        Training rounds (the featurizer's statistics take 3 more, before them).
    local_epochs : int, default=1
    val_fraction : float, default=0.2
        Each site keeps this stratified share of its subjects for validation.
    min_fit_clients : int, default=1
        A round completes with at least this many sites; failures are accepted, so a site
        that dies mid-round does not stop the run.
    max_subjects_per_site : int or None, default=None
        Keep the first N subjects (by id) of each site: quick runs and tests.
    round_timeout_s : float or None, default=None
        With real processes: a round stops waiting for a silent site after this long.
    seed : int, default=0
    privacy : PrivacyConfig or None, default=None
    """

    partition: str = ""
    n_sites: int = 4
    dirichlet_alpha: float = 0.5
    strategy: str = "fedavg"
    proximal_mu: float = 0.01
    rounds: int = 20
    local_epochs: int = 1
    val_fraction: float = 0.2
    min_fit_clients: int = 1
    max_subjects_per_site: int | None = None
    round_timeout_s: float | None = None
    seed: int = 0
    privacy: PrivacyConfig | None = None

    def __post_init__(self) -> None:
        if not self.partition:
            raise ValueError(
                "[federated] partition is required: name one of the dataset's partitions "
                '(e.g. partition = "dirichlet")'
            )
        if not self.dirichlet_alpha > 0:
            raise ValueError(f"[federated] dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"[federated] strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        for name in ("rounds", "local_epochs", "min_fit_clients", "n_sites"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"[federated] {name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"[federated] val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.proximal_mu < 0:
            raise ValueError(f"[federated] proximal_mu must be >= 0, got {self.proximal_mu}")
        if self.strategy == "fedprox" and self.privacy is not None:
            raise ValueError(
                "[federated] strategy 'fedprox' with [federated.privacy] is not supported "
                "(the DP-SGD loop has no proximal term); use 'fedavg'"
            )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FederatedConfig:
        check_known_keys("[federated]", raw, {f.name for f in fields(cls)})
        raw = dict(raw)
        privacy = raw.pop("privacy", None)
        if privacy is not None:
            check_known_keys(
                "[federated.privacy]", privacy, {f.name for f in fields(PrivacyConfig)}
            )
            privacy = PrivacyConfig(**privacy)
        return cls(**raw, privacy=privacy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FederatedExperiment:
    """A parsed federated experiment file: any registered dataset whose spec has partitions.

    ``train`` is the set the sites are drawn from; ``test`` (optional) is scored once by the
    final global model, overall and per site (its samples partitioned the same way).
    ``protocol`` (optional, instead of ``test``) names one of the dataset's split protocols:
    its test part is held out of every site and scored once at the end, so a dataset whose
    test set lives in the one training file (MIT-BIH's DS2, MedMNIST's official test part, a
    subject split of MIMIC-III) gets an honest test too.
    """

    name: str
    dataset: str
    task: str
    train: str
    test: str = ""
    protocol: str = ""
    features: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    local_train: dict[str, Any] = field(default_factory=dict)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    output_dir: str = ""
    #: the ``[task]`` table of a config task (event datasets), registered again by every
    #: site process (:func:`medseq.federated.sites.read_set`), which has not parsed the file
    task_table: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def register_task(self) -> None:
        """Register the ``[task]`` table (if any) in this process: Flower's simulated
        sites run in worker processes that never parsed the experiment file."""
        if self.task_table:
            from medseq.tasks.spec import define_task

            define_task(self.dataset, self.task, self.task_table)


_TOP = {"name", "data", "features", "model", "train", "federated", "output_dir", "task"}
_DATA = {"dataset", "task", "train", "test", "protocol"}


def _data_section(raw: dict[str, Any]) -> dict[str, str]:
    """``[data]`` with dataset, task and train present and checked against the registry."""
    from medseq.datasets.registry import DATASETS, get_dataset

    data = dict(raw.get("data", {}))
    check_known_keys("[data]", data, _DATA)
    for key in ("dataset", "task", "train"):
        if not data.get(key):
            raise ValueError(
                f"[data] {key} is required in a federated file (there is no default "
                f"dataset): [data] names dataset (one of {sorted(DATASETS)}), task and train"
            )
    spec = get_dataset(str(data["dataset"]))
    task_type = spec.task_type(str(data["task"]))
    if task_type not in TASK_TYPES:
        raise ValueError(
            f"[data] task {data['task']!r} is a {task_type} task; federated runs select "
            f"rounds by validation AUROC and support {TASK_TYPES}"
        )
    from medseq.capabilities import require_stage

    require_stage(spec, "federated")  # the capability matrix's sentence when it is a gap
    if data.get("protocol"):
        spec.protocol(str(data["protocol"]))  # an unknown name lists the dataset's protocols
        if data.get("test"):
            raise ValueError(
                f"[data] protocol {data['protocol']!r} takes the test set from `train`; "
                "remove [data] test"
            )
    return {k: str(v) for k, v in data.items()}


def parse_federated(raw: dict[str, Any], default_name: str = "federated") -> FederatedExperiment:
    """Build a :class:`FederatedExperiment` from a TOML-shaped dict; unknown keys raise.

    The dataset must name partitions in its spec (``spec.require("partitions", ...)``), and
    ``[federated] partition`` must be one of them.
    """
    from medseq.datasets.registry import get_dataset

    check_known_keys("top level", raw, _TOP)
    task_table = dict(raw.get("task") or {})
    if task_table:  # a config task: registered before [data] task is checked
        from medseq.tasks.spec import define_task

        raw_data = dict(raw.get("data", {}))
        define_task(str(raw_data.get("dataset", "")), str(raw_data.get("task", "")), task_table)
    data = _data_section(raw)
    federated = FederatedConfig.from_dict(dict(raw.get("federated", {})))
    partitions = get_dataset(data["dataset"]).partitions
    if federated.partition not in partitions:
        raise ValueError(
            f"[federated] partition {federated.partition!r} is not one of dataset "
            f"{data['dataset']!r}'s partitions {sorted(partitions)}"
        )
    task_type = get_dataset(data["dataset"]).task_type(data["task"])
    if federated.privacy is not None and task_type != "binary":
        raise ValueError(
            f"[federated.privacy] DP-SGD supports binary tasks only; task {data['task']!r} "
            f"is {task_type}: remove [federated.privacy]"
        )
    if dict(raw.get("train", {})).get("class_weight") is not None:
        raise ValueError(
            "[train] class_weight is not supported in a federated run: each site would weight "
            "its loss by its own labels, and a label-skewed site may hold no sample of a "
            "class; remove it"
        )
    name = str(raw.get("name", default_name))
    return FederatedExperiment(
        name=name,
        dataset=data["dataset"],
        task=data["task"],
        train=data["train"],
        test=data.get("test", ""),
        protocol=data.get("protocol", ""),
        features=dict(raw.get("features", {})),
        model=dict(raw.get("model", {})),
        local_train=dict(raw.get("train", {})),
        federated=federated,
        output_dir=str(raw.get("output_dir", f"runs/{name}")),
        task_table=task_table,
    )


def load_federated(path: str | Path) -> FederatedExperiment:
    """Read a federated experiment TOML file; errors name the file."""
    from medseq.experiment.config import load_toml

    return load_toml(path, parse_federated)
