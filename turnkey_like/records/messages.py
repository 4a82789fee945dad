"""The one channel protocol: every message a tk child sends to the process that mirrors it.

A child (an input's child running the pipeline, a zoo model's child running the survey) sends
messages while it works; the Dask relay of a corpus run adds its own around them. Each kind is one
:class:`msgspec.Struct` with a ``tag`` (the ``kind`` key when encoded), and :data:`Message` is their
tagged union: a channel encodes each message with the one codec (:func:`~turnkey_like.records.encode`)
and the reader decodes it as :data:`Message` (:func:`~turnkey_like.records.decode`), which validates
every field; receivers dispatch on the message's type (``match``/``isinstance``), never on a string.

Who sends what::

    an input's child (turnkey_like.pipeline)   FoundCall ..., Discovered, Save, StageStarted, StageFinished,
                                               then Done, or InputFailed / Crash
    a zoo model's child (pipeline.survey)      SurveyStep ..., then SurveyDone, or Crash
    a Dask task relaying a child (corpus)      Attempt, the child's messages, Output, Tick, Ended
    the client, to wake its own reader         Wake
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

from turnkey_like.records.base import Status
from turnkey_like.records.discovery import Invocation, ModelInfo, ScriptResult
from turnkey_like.records.report import BuildRecord
from turnkey_like.records.survey import ModelSurvey


class _Message(msgspec.Struct, tag_field="kind", kw_only=True):
    """Base of every message (encoded with a ``kind`` key naming its tag)."""


# -- an input's child (the pipeline) ---------------------------------------------------------------


class FoundCall(_Message, tag="found_call"):
    """A new invocation, while discovery runs: streamed one by one, so the cost of a message does
    not grow with what was found before (a generation loop or a shape sweep makes thousands).

    Attributes:
        path: the model hashes from the top-level model down to the invocation's model.
        invocation: the new invocation (its ``executed`` count as of the call; the final counts come
            with :class:`Discovered`).
        model: that model on its first invocation, with no invocations or children (they follow in
            their own messages); ``None`` when the model was announced before.
    """

    path: list[str]
    invocation: Invocation
    model: ModelInfo | None = None


class Tally(msgspec.Struct, array_like=True):
    """What an invocation's record holds once discovery ended, beyond what streamed it
    (:class:`FoundCall`); encoded as a JSON array, one per invocation of a sweep.

    Attributes:
        hash: the invocation's hash (checked against the one streamed at its place).
        executed: how many times it ran; time_s: the seconds those calls took.
        selected: whether the ``::HASH`` selection kept it.
        build_name: its cache folder.
    """

    hash: str
    executed: int
    time_s: float
    selected: bool
    build_name: str | None


class Discovered(_Message, tag="discovered"):
    """The script's record once discovery ended (selection applied, builds named); the stages follow.

    Attributes:
        result: the record without its invocations (``ScriptResult.without_invocations``): each came
            in its own :class:`FoundCall`, and is not sent again.
        tallies: one :class:`Tally` per invocation, in the order they were streamed (about 55 bytes
            each, where an invocation's record is about 900).
    """

    result: ScriptResult
    tallies: list[Tally] = []


class Save(_Message, tag="save"):
    """A build record to write to the cache (before and after each stage)."""

    record: BuildRecord


class StageStarted(_Message, tag="stage_started"):
    """``stage`` (a name of ``records.STAGES``) started for the invocation with hash ``invocation``."""

    invocation: str
    stage: str


class StageFinished(_Message, tag="stage_finished"):
    """``stage`` ended for the invocation with hash ``invocation`` (its outcome came in a :class:`Save`)."""

    invocation: str
    stage: str


class Done(_Message, tag="done"):
    """The input's last message: its record without its invocations (they and their stages came
    before, in :class:`FoundCall`, :class:`Discovered` and :class:`Save`), and the ``::HASH``
    selection error (``error`` and ``hint`` of a ``SelectionError``) when a selector matched nothing."""

    result: ScriptResult
    error: str | None = None
    hint: str | None = None


class InputFailed(_Message, tag="tk_error"):
    """A problem with the input itself (an unreadable ``.onnx`` file): tk's one-line error and hint."""

    error: str
    hint: str | None = None


class Crash(_Message, tag="crash"):
    """tk itself failed in the child: the exception's one line and the last frames of its traceback."""

    error: str
    stack: str | None = None


# -- a zoo model's child (the survey) --------------------------------------------------------------


class SurveyStep(_Message, tag="survey_step"):
    """The model's record so far, sent before each step of its survey, and the step about to run
    (``build``, ``run``, ``shallow copy``, a rung of the ladder, ``export``)."""

    survey: ModelSurvey
    step: str


class SurveyDone(_Message, tag="survey_done"):
    """The model's last message: its whole survey."""

    survey: ModelSurvey


# -- the Dask relay of one task -----------------------------------------------------------------------


class Attempt(_Message, tag="attempt"):
    """An attempt of the task began on a worker (a second one: the first worker died).

    Attributes:
        token: this attempt's id.
        where: ``host (tcp://address)`` of the worker.
        uploaded: the worker's copy of an uploaded script (``--upload``), ``None`` otherwise.
    """

    token: str
    where: str
    uploaded: str | None = None


class Ended(_Message, tag="ended"):
    """The child ended before its last message (the fields of ``launcher.ChildEnded``), or tk
    could not start it on the worker (``hint`` then says what to do)."""

    status: Status
    error: str
    stack: str | None = None
    hint: str | None = None


class Output(_Message, tag="output"):
    """Text the child wrote to its ``stream``."""

    stream: Literal["stdout", "stderr"]
    text: str


class Tick(_Message, tag="tick"):
    """Sent by a task that was silent for a while, so that its reader checks its time limits."""


class Wake(_Message, tag="wake"):
    """Put by the client in a task's queue to wake the thread waiting on it."""


Message = Union[FoundCall, Discovered, Save, StageStarted, StageFinished, Done, InputFailed, Crash, SurveyStep,
                SurveyDone, Attempt, Ended, Output, Tick, Wake]
"""Any message of the protocol (the type channels decode)."""

#: A batch of messages (what a Dask task puts in its queue at once).
Batch = list[Message]

#: The messages a child sends last: after one, the child exits.
LAST = (Done, InputFailed, Crash, SurveyDone)
