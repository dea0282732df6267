"""Calibrating the out-of-scope logit: how sure a reply model must be to claim a message.

A softmax over the shop's intents always sums to one, so "what time is it in Tokyo" can get
0.8 for ``delivery_time``. The response bank therefore carries a background logit: serving
appends it to the intent logits before the softmax (``app.store.bank``), so a message
whose best logit is not clearly above it gets a low confidence and is handed off.

The background logit is set between the best logits of off-topic probe messages (below,
written for this project) and those of the training utterances: the probes' 95th percentile,
capped at the training utterances' 2nd percentile so that a knowledge base whose intents
happen to cover a probe's topic does not lose confidence on its own messages.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

OFF_TOPIC_PROBES = (
    "what is the meaning of life",
    "tell me a joke",
    "who won the football match yesterday",
    "what's the capital of france",
    "how do I cook pasta",
    "can you write me a poem about the sea",
    "is the earth flat",
    "recommend a good movie for tonight",
    "what time is it in tokyo",
    "my cat is sick",
    "I like trains",
    "how tall is mount everest",
    "translate good night into italian",
    "what is two plus two",
    "who is the president of brazil",
    "sing me a song",
    "do you dream",
    "what's your favourite colour",
    "how many legs does a spider have",
    "explain quantum physics simply",
    "the weather is lovely today",
    "what should I name my dog",
    "how do I fix a flat bicycle tyre",
    "which planet is the largest",
    "play some music",
    "what's a good recipe for banana bread",
    "how far away is the moon",
    "who wrote hamlet",
    "are aliens real",
    "I'm bored",
    "asdf",
    "qwerty",
    "xq zzv blorp",
    "lorem ipsum dolor sit amet",
    "123456",
    "?",
    "ok so the thing is",
    "bananas",
    "the quick brown fox jumps over the lazy dog",
    "what's the best programming language",
)
PROBE_QUANTILE = 0.95
IN_DOMAIN_QUANTILE = 0.02


def out_of_scope_logit(
    probe_logits: npt.NDArray[np.float32], in_domain_logits: npt.NDArray[np.float32]
) -> float:
    """The background logit from the intent logits of the probes and of in-domain messages."""
    probes = float(np.quantile(probe_logits.max(axis=1), PROBE_QUANTILE))
    in_domain = float(np.quantile(in_domain_logits.max(axis=1), IN_DOMAIN_QUANTILE))
    return min(probes, in_domain)
