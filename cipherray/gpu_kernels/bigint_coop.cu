// cipherray: cooperative big-integer kernels, CR_TPI threads per number (bigint_coop.cuh).
// Compiled once per limb count BI_N and group size CR_TPI by NVRTC and by the host compiler.
#include "bigint_coop.cuh"

#ifndef BI_N
#define BI_N 128
#endif

#define coop_montmul_body coop_montmul_kbody<BI_N, CR_TPI>
CRC_ENTRY(coop_montmul, (uint64_t* out, int ldo, const uint64_t* a, int lda, int sa,
                         const uint64_t* b, int ldb, int sb, const uint64_t* m, uint32_t minv,
                         cr_idx count),
          (idx, g, out, ldo, a, lda, sa, b, ldb, sb, m, minv))

#define coop_modexp_body coop_modexp_kbody<BI_N, CR_TPI>
CRC_ENTRY(coop_modexp, (uint64_t* out, int ldo, const uint64_t* base, int ldb, int sb,
                        const uint32_t* e, int lde, int se, int elimbs, int ebits,
                        const uint64_t* m, uint32_t minv, const uint64_t* consts, uint64_t* tbl,
                        int ldt, int w, cr_idx count),
          (idx, g, out, ldo, base, ldb, sb, e, lde, se, elimbs, ebits, m, minv, consts, tbl, ldt,
           w))

#define coop_bucket_prod_body coop_bucket_prod_kbody<BI_N, CR_TPI>
CRC_ENTRY(coop_bucket_prod, (uint64_t* out, int ldo, const uint64_t* base, int ldb,
                             const int32_t* rows, const cr_idx* start, const int32_t* len,
                             const uint64_t* m, uint32_t minv, const uint64_t* one_m,
                             cr_idx count),
          (idx, g, out, ldo, base, ldb, rows, start, len, m, minv, one_m))

#define coop_fixed_base_body coop_fixed_base_kbody<BI_N, CR_TPI>
CRC_ENTRY(coop_fixed_base, (uint64_t* out, int ldo, const uint32_t* e, int lde, int se,
                            int elimbs, int nwin, int w, const uint64_t* table, const uint64_t* m,
                            uint32_t minv, const uint64_t* mulin, int ldmi, int smi, cr_idx count),
          (idx, g, out, ldo, e, lde, se, elimbs, nwin, w, table, m, minv, mulin, ldmi, smi))
