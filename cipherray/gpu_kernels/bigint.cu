// cipherray: batched big-integer kernels. Compiled once per limb count BI_N (-DBI_N=...)
// by NVRTC (CuPy RawModule) and by the host C++ compiler (ctypes); see bigint.py.
#include "bigint.cuh"

#ifndef BI_N
#define BI_N 128
#endif
#define NN BI_N

#define montmul_body montmul_kbody<NN>
CR_ENTRY(montmul, (uint64_t* out, int ldo, const uint64_t* a, int lda, int sa, const uint64_t* b,
                   int ldb, int sb, const uint64_t* m, uint32_t minv, cr_idx count),
         (idx, out, ldo, a, lda, sa, b, ldb, sb, m, minv))

#define montsqr_body montsqr_kbody<NN>
CR_ENTRY(montsqr, (uint64_t* out, int ldo, const uint64_t* a, int lda, const uint64_t* m,
                   uint32_t minv, cr_idx count),
         (idx, out, ldo, a, lda, m, minv))

#define mulmod_body mulmod_kbody<NN>
CR_ENTRY(mulmod, (uint64_t* out, int ldo, const uint64_t* a, int lda, int sa, const uint64_t* b,
                  int ldb, int sb, const uint64_t* m, uint32_t minv, const uint64_t* r2,
                  cr_idx count),
         (idx, out, ldo, a, lda, sa, b, ldb, sb, m, minv, r2))

#define modexp_body modexp_kbody<NN>
CR_ENTRY(modexp, (uint64_t* out, int ldo, const uint64_t* base, int ldb, int sb, const uint32_t* e,
                  int lde, int se, int elimbs, int ebits, const uint64_t* m, uint32_t minv,
                  const uint64_t* consts, uint64_t* tbl, int ldt, int w, cr_idx count),
         (idx, out, ldo, base, ldb, sb, e, lde, se, elimbs, ebits, m, minv, consts, tbl, ldt, w))

#define montmul_digit_body montmul_digit_kbody<NN>
CR_ENTRY(montmul_digit, (uint64_t* out, int ldo, const uint64_t* tbl, int ldt, const uint32_t* e,
                         int lde, int se, int elimbs, int win, int w, const uint64_t* m,
                         uint32_t minv, cr_idx count),
         (idx, out, ldo, tbl, ldt, e, lde, se, elimbs, win, w, m, minv))

#define fixed_base_body fixed_base_kbody<NN>
CR_ENTRY(fixed_base, (uint64_t* out, int ldo, const uint32_t* e, int lde, int se, int elimbs,
                      int nwin, int w, const uint64_t* table, const uint64_t* m, uint32_t minv,
                      const uint64_t* mulin, int ldmi, int smi, cr_idx count),
         (idx, out, ldo, e, lde, se, elimbs, nwin, w, table, m, minv, mulin, ldmi, smi))

#define one_plus_xn_body one_plus_xn_kbody<NN>
CR_ENTRY(one_plus_xn, (uint64_t* out, int ldo, const uint64_t* x, int ldx, const uint64_t* n,
                       cr_idx count),
         (idx, out, ldo, x, ldx, n))

#define reduce2_body reduce2_kbody<NN>
CR_ENTRY(reduce2, (uint64_t* out, int ldo, const uint64_t* c, int ldc, const uint64_t* m,
                   uint32_t minv, const uint64_t* consts, cr_idx count),
         (idx, out, ldo, c, ldc, m, minv, consts))

#define dec_finish_body dec_finish_kbody<NN>
CR_ENTRY(dec_finish, (uint64_t* out, int ldo, const uint64_t* xp, const uint64_t* xq, int ldx,
                      const uint64_t* prm, uint32_t p_minv, uint32_t q_minv, cr_idx count),
         (idx, out, ldo, xp, xq, ldx, prm, p_minv, q_minv))

#define bucket_prod_body bucket_prod_kbody<NN>
CR_ENTRY(bucket_prod, (uint64_t* out, int ldo, const uint64_t* base, int ldb, const int32_t* rows,
                       const cr_idx* start, const int32_t* len, const uint64_t* m, uint32_t minv,
                       cr_idx count),
         (idx, out, ldo, base, ldb, rows, start, len, m, minv))
