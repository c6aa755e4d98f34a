// Segmented ciphertext products into buckets with AVX-512 IFMA (52-bit limbs, 8 lanes):
// the histograms of SecureBoost and the X^T [[d]] of hetero logistic regression
// (cipherray.protocols.paillier.histogram.bucket_products).
//
// Eight *columns* run side by side, one per 64-bit lane. Every taken row's ciphertext is
// converted to Montgomery form once (eight rows per multiplication by R^2), then for each
// group of eight columns the rows are walked in order: the row's value is broadcast to all
// lanes and each lane multiplies it into its own bucket accumulator, the one its key picks
// (bucket slot * nbuckets + key). The accumulators of a group are a table
// acc[bucket][limb][lane] (uint64), so lane `l` gathers limb j of its bucket b at
// (b L + j) 8 + l and scatters it back after the multiplication; the lanes never collide.
// Accumulators start at R mod m (Montgomery one), so an empty bucket comes out as 1.
//
// Weighted mode: per slot and column prod_b B_b^b by running products from the top bucket
// down (2 multiplications per bucket); bucket b of all eight lanes is one contiguous row of
// the table, so this needs no gathers.
//
// Threads (OpenMP) take groups of eight columns; when there are too few groups for the
// threads, the rows are cut into chunks with a table each, and the chunks' tables are
// multiplied together per group before the output step.
//
// Almost-Montgomery multiplication (ifma_common.h): values stay in [0, 2m); the output is
// converted out of Montgomery form and reduced into [0, m) by one conditional subtraction.
// Built by cipherray.cpu_kernels with -mavx512f -mavx512ifma and only called after the
// Python side has checked that the CPU has both (see bucket.py).

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

namespace {

#include "ifma_common.h"

struct Job {
  const uint64_t* m64;
  int k64;
  const uint64_t* m52;
  uint64_t k0;
  const uint64_t* mrow52;  // taken rows in Montgomery form, row-major, L limbs each
  int64_t R;               // taken rows
  const int32_t* keys;     // (d, n) row-major
  int64_t n;
  int32_t d;
  const int64_t* rows;   // R row numbers into keys
  const int32_t* slots;  // R slots
  int32_t nbuckets, nslots, weighted;
  uint64_t* out64;
};

// rows [first, first + 8) (clipped at count) of cts64 into Montgomery form, row-major.
template <int L>
static void to_mont_rows(const Job& job, const uint64_t* cts64, const __m512i* r2, int64_t first,
                         uint64_t* mrow52) {
  const __m512i k0 = _mm512_set1_epi64((long long)job.k0);
  alignas(64) __m512i x[L];
  alignas(64) uint64_t lanes[L][8];
  load_lanes<L>(x, cts64, job.k64, first, job.R);
  amm<L>(x, x, r2, job.m52, k0);
  for (int j = 0; j < L; ++j) _mm512_store_si512(lanes[j], x[j]);
  for (int lane = 0; lane < 8 && first + lane < job.R; ++lane)
    for (int j = 0; j < L; ++j) mrow52[(first + lane) * L + j] = lanes[j][lane];
}

// table[b][j][lane] = R mod m for every bucket b of slot-major buckets
template <int L>
static void table_init(__m512i* table, int64_t buckets, const __m512i* one_m) {
  for (int64_t b = 0; b < buckets; ++b)
    for (int j = 0; j < L; ++j) table[b * L + j] = one_m[j];
}

// multiply rows [r0, r1) of the taken rows into the group's table (columns c0 .. c0 + 7)
template <int L>
static void accumulate(const Job& job, int32_t c0, int64_t r0, int64_t r1, __m512i* table) {
  const __m512i k0 = _mm512_set1_epi64((long long)job.k0);
  const int nb = job.nbuckets;
  alignas(64) __m512i acc[L], x[L];
  alignas(64) int64_t idx[8];
  const int32_t* key_col[8];
  for (int lane = 0; lane < 8; ++lane)
    key_col[lane] = c0 + lane < job.d ? job.keys + (int64_t)(c0 + lane) * job.n : nullptr;
  const __m512i lane_no = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  long long* const base = reinterpret_cast<long long*>(table);
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t row = job.rows[i];
    const int64_t sb = (int64_t)job.slots[i] * nb;
    for (int lane = 0; lane < 8; ++lane)
      idx[lane] = (sb + (key_col[lane] ? key_col[lane][row] : 0)) * L * 8;
    const __m512i at = _mm512_add_epi64(_mm512_load_si512(idx), lane_no);
    for (int j = 0; j < L; ++j)
      acc[j] = _mm512_i64gather_epi64(_mm512_add_epi64(at, _mm512_set1_epi64(8 * j)), base, 8);
    const uint64_t* mr = job.mrow52 + i * L;
    for (int j = 0; j < L; ++j) x[j] = _mm512_set1_epi64((long long)mr[j]);
    amm<L>(acc, acc, x, job.m52, k0);
    for (int j = 0; j < L; ++j)
      _mm512_i64scatter_epi64(base, _mm512_add_epi64(at, _mm512_set1_epi64(8 * j)), acc[j], 8);
  }
}

// out of Montgomery form and into out64 for the group's real columns
template <int L>
static void emit(const Job& job, int32_t c0, __m512i* v, const __m512i* one, int64_t out_index0,
                 int64_t lane_stride) {
  const __m512i k0 = _mm512_set1_epi64((long long)job.k0);
  amm<L>(v, v, one, job.m52, k0);
  alignas(64) uint64_t lanes[L][8];
  for (int j = 0; j < L; ++j) _mm512_store_si512(lanes[j], v[j]);
  uint64_t x52[L];
  for (int lane = 0; lane < 8 && c0 + lane < job.d; ++lane) {
    for (int j = 0; j < L; ++j) x52[j] = lanes[j][lane];
    store_lane(job.out64 + (out_index0 + lane * lane_stride) * job.k64, job.k64, x52, L, job.m64);
  }
}

template <int L>
static void finish(const Job& job, int32_t c0, __m512i* table, const __m512i* one,
                   const __m512i* one_m) {
  const __m512i k0 = _mm512_set1_epi64((long long)job.k0);
  const int nb = job.nbuckets, d = job.d;
  alignas(64) __m512i run[L], acc[L];
  for (int s = 0; s < job.nslots; ++s) {
    __m512i* t = table + (int64_t)s * nb * L;
    if (!job.weighted) {
      // out[(s d + c) nb + b]
      for (int b = 0; b < nb; ++b)
        emit<L>(job, c0, t + (int64_t)b * L, one, ((int64_t)s * d + c0) * nb + b, nb);
      continue;
    }
    // prod_b B_b^b = prod_{b >= 1} prod_{b' >= b} B_b'
    for (int j = 0; j < L; ++j) acc[j] = one_m[j];
    if (nb > 1) {
      for (int j = 0; j < L; ++j) run[j] = t[(int64_t)(nb - 1) * L + j];
      for (int j = 0; j < L; ++j) acc[j] = run[j];
      for (int b = nb - 2; b >= 1; --b) {
        amm<L>(run, run, t + (int64_t)b * L, job.m52, k0);
        amm<L>(acc, acc, run, job.m52, k0);
      }
    }
    emit<L>(job, c0, acc, one, (int64_t)s * d + c0, 1);
  }
}

template <int L>
static int bucket_all(Job& job, const uint64_t* r2_64, const uint64_t* cts64, int threads) {
  uint64_t m52[L];
  for (int j = 0; j < L; ++j) m52[j] = limb52(job.m64, job.k64, j);
  job.m52 = m52;
  const __m512i k0 = _mm512_set1_epi64((long long)job.k0);
  alignas(64) __m512i r2[L], one[L], one_m[L];
  for (int j = 0; j < L; ++j) {
    r2[j] = _mm512_set1_epi64((long long)limb52(r2_64, job.k64, j));
    one[j] = _mm512_set1_epi64(j == 0 ? 1 : 0);
  }
  amm<L>(one_m, r2, one, m52, k0);  // R mod m

  const int64_t R = job.R;
  uint64_t* mrow52 = nullptr;
  if (R > 0) {
    mrow52 = static_cast<uint64_t*>(malloc(sizeof(uint64_t) * (size_t)R * L));
    if (mrow52 == nullptr) return -2;
    const int64_t blocks = (R + 7) / 8;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; ++b) to_mont_rows<L>(job, cts64, r2, b * 8, mrow52);
  }
  job.mrow52 = mrow52;

  const int32_t groups = (job.d + 7) / 8;
  const int64_t buckets = (int64_t)job.nslots * job.nbuckets;
  const size_t table_bytes = sizeof(__m512i) * (size_t)buckets * L;
  // rows in chunks when the groups alone cannot keep the threads busy
  int64_t chunks = 1;
  if (threads > 1 && groups < 4 * threads) {
    chunks = (4 * threads + groups - 1) / groups;
    const int64_t most = R / 256 > 1 ? R / 256 : 1;
    if (chunks > most) chunks = most;
  }
  int rc = 0;
  if (chunks == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int32_t g = 0; g < groups; ++g) {
      __m512i* table = static_cast<__m512i*>(aligned_alloc(64, table_bytes));
      if (table == nullptr) {
#pragma omp atomic write
        rc = -2;
        continue;
      }
      table_init<L>(table, buckets, one_m);
      accumulate<L>(job, g * 8, 0, R, table);
      finish<L>(job, g * 8, table, one, one_m);
      free(table);
    }
  } else {
    const int64_t items = (int64_t)groups * chunks;
    __m512i* tables = static_cast<__m512i*>(aligned_alloc(64, table_bytes * (size_t)items));
    if (tables == nullptr) {
      free(mrow52);
      return -2;
    }
    const int64_t per = (R + chunks - 1) / chunks;
    const int64_t stride = buckets * L;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t it = 0; it < items; ++it) {
      const int32_t g = (int32_t)(it / chunks);
      const int64_t c = it % chunks;
      const int64_t r0 = c * per, r1 = r0 + per < R ? r0 + per : R;
      __m512i* table = tables + it * stride;
      table_init<L>(table, buckets, one_m);
      if (r0 < r1) accumulate<L>(job, g * 8, r0, r1, table);
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int32_t g = 0; g < groups; ++g) {
      __m512i* t0 = tables + (int64_t)g * chunks * stride;
      for (int64_t c = 1; c < chunks; ++c) {
        const __m512i* tc = t0 + c * stride;
        for (int64_t b = 0; b < buckets; ++b) amm<L>(t0 + b * L, t0 + b * L, tc + b * L, m52, k0);
      }
      finish<L>(job, g * 8, t0, one, one_m);
    }
    free(tables);
  }
  free(mrow52);
  return rc;
}


// Horner packing: out[o] = prod_j c[o k + j]^(2^(w (k - 1 - j))) mod m, computed as
// acc <- acc^(2^w) * c[o k + j]. Eight outputs side by side, one per lane; each input is
// converted to Montgomery form on load (one multiplication by R^2).
template <int L>
static int horner_all(const uint64_t* m64, int k64, uint64_t k0v, const uint64_t* r2_64,
                      const uint64_t* cts64, int64_t nout, int32_t k, int32_t w,
                      uint64_t* out64, int threads) {
  uint64_t m52[L];
  for (int j = 0; j < L; ++j) m52[j] = limb52(m64, k64, j);
  const __m512i k0 = _mm512_set1_epi64((long long)k0v);
  alignas(64) __m512i r2[L], one[L];
  for (int j = 0; j < L; ++j) {
    r2[j] = _mm512_set1_epi64((long long)limb52(r2_64, k64, j));
    one[j] = _mm512_set1_epi64(j == 0 ? 1 : 0);
  }
  const int64_t groups = (nout + 7) / 8;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads) if (threads > 1)
  for (int64_t g = 0; g < groups; ++g) {
    alignas(64) __m512i acc[L], x[L];
    alignas(64) uint64_t tmp[8];
    const int64_t o0 = g * 8;
    for (int32_t j = 0; j < k; ++j) {
      for (int l = 0; l < L; ++l) {
        for (int lane = 0; lane < 8; ++lane) {
          const int64_t o = o0 + lane;
          tmp[lane] = o < nout ? limb52(cts64 + (o * k + j) * k64, k64, l) : (l == 0 ? 1 : 0);
        }
        x[l] = _mm512_load_si512(tmp);
      }
      amm<L>(x, x, r2, m52, k0);
      if (j == 0) {
        for (int l = 0; l < L; ++l) acc[l] = x[l];
        continue;
      }
      for (int32_t s = 0; s < w; ++s) amm<L>(acc, acc, acc, m52, k0);
      amm<L>(acc, acc, x, m52, k0);
    }
    amm<L>(acc, acc, one, m52, k0);
    alignas(64) uint64_t lanes[L][8];
    for (int l = 0; l < L; ++l) _mm512_store_si512(lanes[l], acc[l]);
    uint64_t x52[L];
    for (int lane = 0; lane < 8 && o0 + lane < nout; ++lane) {
      for (int l = 0; l < L; ++l) x52[l] = lanes[l][lane];
      store_lane(out64 + (o0 + lane) * k64, k64, x52, L, m64);
    }
  }
  return 0;
}

}  // namespace

extern "C" {

// Bucket products mod m (odd, R = 2^(52 L) > 4 m). cts64: the R taken rows' values (< m),
// k64 little-endian 64-bit words each; keys: (d, n) int32 in [0, nbuckets); rows: the R taken
// rows' numbers in [0, n); slots: their slots in [0, nslots). out64 receives, k64 words each,
// out[(s d + c) nbuckets + b] = prod of the taken rows of slot s with key b in column c, or
// with weighted != 0 out[s d + c] = prod_b (that product)^b. k0 = -m^-1 mod 2^52,
// r2 = R^2 mod m. Returns 0, -1 for an unsupported L, -2 when memory ran out.
int cr_ifma_bucket(const uint64_t* m64, int32_t k64, uint64_t k0, const uint64_t* r2_64,
                   int32_t L, const uint64_t* cts64, int64_t R, const int32_t* keys, int64_t n,
                   int32_t d, const int64_t* rows, const int32_t* slots, int32_t nbuckets,
                   int32_t nslots, int32_t weighted, uint64_t* out64, int32_t threads) {
  if (d <= 0 || nbuckets <= 0 || nslots <= 0) return 0;
  Job job{m64, k64, nullptr, k0, nullptr, R, keys, n, d, rows, slots,
          nbuckets, nslots, weighted, out64};
  if (threads < 1) threads = 1;
  switch (L) {
    case 40: return bucket_all<40>(job, r2_64, cts64, threads);
    case 60: return bucket_all<60>(job, r2_64, cts64, threads);
    case 79: return bucket_all<79>(job, r2_64, cts64, threads);
    case 119: return bucket_all<119>(job, r2_64, cts64, threads);
    default: return -1;
  }
}

// Horner packing mod m (odd, R = 2^(52 L) > 4 m): cts64 holds nout * k values (< m), k64
// words each, row-major (output o's inputs at o k .. o k + k - 1); out64 receives nout
// values out[o] = prod_j cts[o k + j]^(2^(w (k - 1 - j))) mod m. Returns 0 or -1 for an
// unsupported L.
int cr_ifma_horner(const uint64_t* m64, int32_t k64, uint64_t k0, const uint64_t* r2_64,
                   int32_t L, const uint64_t* cts64, int64_t nout, int32_t k, int32_t w,
                   uint64_t* out64, int32_t threads) {
  if (nout <= 0 || k <= 0) return 0;
  if (threads < 1) threads = 1;
  switch (L) {
    case 40: return horner_all<40>(m64, k64, k0, r2_64, cts64, nout, k, w, out64, threads);
    case 60: return horner_all<60>(m64, k64, k0, r2_64, cts64, nout, k, w, out64, threads);
    case 79: return horner_all<79>(m64, k64, k0, r2_64, cts64, nout, k, w, out64, threads);
    case 119: return horner_all<119>(m64, k64, k0, r2_64, cts64, nout, k, w, out64, threads);
    default: return -1;
  }
}
}
