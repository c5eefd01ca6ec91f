"""What an explanation of a window's score is, whatever method produced it (SHAP, LIME, LSTM-AE).

Texts are bounded and free of control characters and numbers are finite (``schemas.bounds``): an
explanation is shown in terminals and web pages and cached in Redis as JSON, and must read back as it
was written.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from minerlens_core.schemas.bounds import FiniteFloat, Int64, LongText, NoControl, SafeText, ShortText
from minerlens_core.schemas.windows import ModelRef

MAX_CONTRIBUTIONS = 4096
"""Contributions one explanation lists (the feature spec has about a thousand features)."""
MAX_PARAMS = 64

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

    feature: ShortText
    label: ShortText = ""
    value: FiniteFloat | None
    baseline: FiniteFloat | None = None
    contribution: FiniteFloat
    direction: Direction
    text: SafeText = Field(
        default="", description="one sentence, e.g. 'sched_yield is 41% of calls, benign pods: < 1%'"
    )


class Explanation(BaseModel):
    """Why one window got its score."""

    model_config = ConfigDict(extra="forbid")

    method: Method
    model: ModelRef
    window_id: Annotated[str, Field(max_length=512), NoControl] = ""
    score: float = Field(ge=0.0, le=1.0)
    threshold: FiniteFloat | None = None
    miner: bool | None = None
    base_value: FiniteFloat | None = Field(default=None, description="SHAP expected value / LIME intercept")
    contributions: list[Contribution] = Field(max_length=MAX_CONTRIBUTIONS)
    summary: LongText = Field(description="one plain-language paragraph")
    params: dict[ShortText, SafeText | Int64 | FiniteFloat | bool] = Field(default_factory=dict, max_length=MAX_PARAMS)
    cost_ms: FiniteFloat = Field(default=0.0, ge=0.0)
