"""What an explanation of a window's score is, whatever method produced it (SHAP, LIME, LSTM-AE)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.schemas.windows import ModelRef

Method = Literal["shap", "lime", "lstm-ae"]
Direction = Literal["toward_miner", "toward_benign"]


class Contribution(BaseModel):
    """One feature's part in the score, with its value next to what benign pods show.

    ``feature`` is the spec name (``freq_nocheap.sched_yield``); ``label`` says it in words
    ("sched_yield share of calls (excluding cheap calls)"). ``baseline`` is the benign training
    windows' median (or the autoencoder's reconstruction) of the same feature; ``contribution`` is in
    the method's unit (SHAP: log-odds or probability, LIME: local linear weight, LSTM-AE: share of
    reconstruction error) and ``direction`` is its sign in plain words.
    """

    model_config = ConfigDict(extra="forbid")

    feature: str
    label: str = ""
    value: float | None
    baseline: float | None = None
    contribution: float
    direction: Direction
    text: str = Field(default="", description="one sentence, e.g. 'sched_yield is 41% of calls, benign pods: < 1%'")


class Explanation(BaseModel):
    """Why one window got its score."""

    model_config = ConfigDict(extra="forbid")

    method: Method
    model: ModelRef
    window_id: str = ""
    score: float = Field(ge=0.0, le=1.0)
    threshold: float | None = None
    miner: bool | None = None
    base_value: float | None = Field(default=None, description="SHAP expected value / LIME intercept")
    contributions: list[Contribution]
    summary: str = Field(description="one plain-language paragraph")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    cost_ms: float = Field(default=0.0, ge=0.0)
