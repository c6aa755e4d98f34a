// The two halves of an AES key-schedule step with AES-NI (FIPS 197, 5.2), shared by
// aes_ctr.cc / aes_ctr_vaes.cc (AES-256) and ot_hash.cc (AES-128, whose every step is
// sched_even of the previous round key). Include inside a file's anonymous namespace.
#ifndef CIPHERRAY_AES_SCHEDULE_H
#define CIPHERRAY_AES_SCHEDULE_H

// prev ^ (prev << 32) ^ (prev << 64) ^ (prev << 96) ^ word, word broadcast from assist
static inline __m128i sched_mix(__m128i prev, __m128i word) {
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  prev = _mm_xor_si128(prev, _mm_slli_si128(prev, 4));
  return _mm_xor_si128(prev, word);
}

static inline __m128i sched_even(__m128i prev, __m128i assist) {  // RotWord(SubWord(w)) ^ rcon
  return sched_mix(prev, _mm_shuffle_epi32(assist, 0xff));
}

static inline __m128i sched_odd(__m128i prev, __m128i assist) {  // SubWord(w)
  return sched_mix(prev, _mm_shuffle_epi32(assist, 0xaa));
}

#endif
