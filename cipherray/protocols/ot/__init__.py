"""Oblivious transfer: base OTs (Chou–Orlandi over the prime-order edwards25519 group,
:mod:`.base`) and IKNP extension to random, correlated (Z_2^64) and chosen-message OTs
(:mod:`.iknp`), or SoftSpokenOT extension with 128 / k bits of traffic per OT
(:mod:`.softspoken`: the same functions and batches, ``softspoken.receiver_setup(k)``
and ``softspoken.sender_setup(msg_a, k)``). Pure functions run at one party each; state
goes in and comes out.

R (extension receiver, holds choice bits) and S (extension sender, holds delta):

    r_state, msg_a = receiver_setup()                     # R -> S: msg_a
    s_state, msg_b = sender_setup(msg_a)                  # S -> R: msg_b
    r_state = receiver_setup_finish(r_state, msg_b)
    r_state, rb, u = receiver_extend(r_state, choices)    # R -> S: u
    s_state, sb = sender_extend(s_state, u, m)
    m0, m1 = rot_sender(sb); mc = rot_receiver(rb)        # or cot_* / ot_*, take() to split
"""

from . import softspoken
from .errors import OTError
from .iknp import (
    ReceiverBatch,
    ReceiverState,
    SenderBatch,
    SenderState,
    cot_receiver,
    cot_sender,
    ot_receiver,
    ot_sender,
    receiver_extend,
    receiver_setup,
    receiver_setup_finish,
    rot_receiver,
    rot_sender,
    sender_extend,
    sender_setup,
    take,
)

__all__ = [
    "OTError",
    "ReceiverBatch",
    "ReceiverState",
    "SenderBatch",
    "SenderState",
    "cot_receiver",
    "cot_sender",
    "ot_receiver",
    "ot_sender",
    "receiver_extend",
    "receiver_setup",
    "receiver_setup_finish",
    "rot_receiver",
    "rot_sender",
    "sender_extend",
    "sender_setup",
    "softspoken",
    "take",
]
