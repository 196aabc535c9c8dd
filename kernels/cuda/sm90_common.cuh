/* sm90_common.cuh — Hopper (sm_90a) device helpers shared by the wgmma/TMA kernels
 * (attn_prefill_sm90.cu, sparse_prefill_sm90.cu): mbarriers, TMA tile loads, named barriers,
 * wgmma fences/commits/waits, shared-memory matrix descriptors (128-byte swizzle), the
 * m64n64k16 / m64n128k16 bf16 wgmma forms (A from shared memory or registers), the Q K^T and
 * P V issue loops over D = 128, and on the host the TMA tensor-map encoder and 3-D bf16 maps. */
#ifndef SCB_KERNELS_CUDA_SM90_COMMON_CUH
#define SCB_KERNELS_CUDA_SM90_COMMON_CUH

#include <cuda.h>
#include <stdint.h>

#include "kernels/cuda/common.cuh"

static __device__ __forceinline__ void h3_mbar_init(uint32_t a, unsigned count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
static __device__ __forceinline__ void h3_mbar_expect_tx(uint32_t a, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(a), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void h3_mbar_arrive(uint32_t a)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory");
}
static __device__ __forceinline__ void h3_mbar_wait(uint32_t a, unsigned parity)
{
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(parity)
                     : "memory");
    } while (!done);
}
/* 3-D tiled TMA load of one box into shared memory, completing on mbarrier bar. */
static __device__ __forceinline__ void h3_tma3(uint32_t dst, const CUtensorMap *map, uint32_t bar,
                                               int c0, int c1, int c2)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];\n"
                 ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}
/* Named barriers 1 and 2 (0 is __syncthreads) pass the turn to issue tensor-core work between
 * the two consumer warpgroups (ping-pong): 128 threads sync, the other 128 arrive. */
static __device__ __forceinline__ void h3_turn_wait(int id)
{
    asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory");
}
static __device__ __forceinline__ void h3_turn_pass(int id)
{
    asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}
static __device__ __forceinline__ void h3_wgmma_fence(void)
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void h3_wgmma_commit(void)
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void h3_wgmma_wait(void)
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Ties the N accumulator registers to the point after a wgmma wait, so that the compiler
 * neither reads them before the asynchronous product has landed nor moves them across. */
template <int N>
static __device__ __forceinline__ void h3_fence_acc(float (&d)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
/* The same for the K k-steps of bf16 A fragments (P) a register-A product reads. */
template <int K>
static __device__ __forceinline__ void h3_keep_p(uint32_t (&pa)[K][4])
{
#pragma unroll
    for (int kk = 0; kk < K; kk++)
#pragma unroll
        for (int i = 0; i < 4; i++) asm volatile("" : "+r"(pa[kk][i])::"memory");
}
/* Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride
 * byte offsets (all in 16-byte units, 14 bits each), layout type 1 in bits 62-63. */
static __device__ __forceinline__ uint64_t h3_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFFu) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

/* The accumulator operands of an m64nNk16 wgmma: N/2 fp32 registers per thread, "+f". */
#define H3_ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
                   "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define H3_ACC32 H3_ACC8(0), H3_ACC8(8), H3_ACC8(16), H3_ACC8(24)
#define H3_ACC64 H3_ACC32, H3_ACC8(32), H3_ACC8(40), H3_ACC8(48), H3_ACC8(56)
#define H3_REGS32 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define H3_REGS64 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"

/* d (64xN fp32, the warpgroup's accumulator fragment: N/2 per thread, N = 64 or 128) (+)=
 * A (64x16, smem desc da, K-major) * B (16xN, smem desc db, K-major); accum = 0 overwrites d. */
template <int NACC>
static __device__ __forceinline__ void h3_wgmma_ss(float (&d)[NACC], uint64_t da, uint64_t db, int accum)
{
    static_assert(NACC == 32 || NACC == 64, "m64n64k16 or m64n128k16");
    if constexpr (NACC == 64)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " H3_REGS64
                     ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                     : H3_ACC64
                     : "l"(da), "l"(db), "r"(accum));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " H3_REGS32
                     ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : H3_ACC32
                     : "l"(da), "l"(db), "r"(accum));
}

/* d (64x128 fp32) += A (64x16 bf16 from registers, the m16n8k16 A fragment per warp)
 * * B (16x128, smem desc db, MN-major: the transpose bit is set). */
static __device__ __forceinline__ void h3_wgmma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " H3_REGS64
                 ", {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                 : H3_ACC64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* S (64 rows x NACC*2 keys) = Q K^T over D = 128: 8 k-steps of 16, both operands K-major in
 * the 128-byte-swizzled layout of 64-column halves (QHALF / KHALF bytes apart), LBO unused,
 * SBO = 8 rows of 128 B; a k-step advances the start address by 32 B within a half. */
template <int NACC, uint32_t QHALF, uint32_t KHALF>
static __device__ __forceinline__ void h3_issue_qk(float (&sc)[NACC], uint32_t qa, uint32_t kt)
{
#pragma unroll
    for (int ks = 0; ks < 8; ks++) {
        const uint32_t ko = (uint32_t)(ks & 3) * 32u;
        h3_wgmma_ss(sc, h3_desc(qa + (uint32_t)(ks >> 2) * QHALF + ko, 16, 1024),
                    h3_desc(kt + (uint32_t)(ks >> 2) * KHALF + ko, 16, 1024), ks > 0);
    }
}
/* O (64x128) += P V over K k-steps of 16 keys: V tile read N-major (transpose bit); LBO = the
 * other 64-column half of D (VHALF bytes away), SBO = 8 key rows of 128 B. */
template <int K, uint32_t VHALF>
static __device__ __forceinline__ void h3_issue_pv(float (&o)[64], uint32_t (&pa)[K][4], uint32_t vt)
{
#pragma unroll
    for (int kk = 0; kk < K; kk++)
        h3_wgmma_rs(o, pa[kk], h3_desc(vt + (uint32_t)kk * 16u * 128u, VHALF, 1024));
}

/* ---- host side: TMA descriptors --------------------------------------------------------- */

typedef CUresult (*scb_sm90_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                       const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                       const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                       CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/* The driver's cuTensorMapEncodeTiled through the runtime (looked up once, cached in *enc);
 * who names the kernel in the error. */
static int scb_sm90_encoder(struct scb_cuda_ctx *cc, scb_sm90_encode_fn *enc, const char *who,
                            struct scb_ctx *err)
{
    int rc = SCB_OK;
    if (!*enc) {
        void *fn = NULL;
        cudaDriverEntryPointQueryResult q;
        SCB_CUDA_TRY(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                      cudaEnableDefault, &q));
        if (q != cudaDriverEntryPointSuccess || !fn) {
            rc = scb_err(err, SCB_E_CUDA, "%s: the driver has no cuTensorMapEncodeTiled", who);
            goto out;
        }
        *enc = (scb_sm90_encode_fn)fn;
    }
out:
    return rc;
}

/* A 3-D bf16 tensor map (128, d1, d2) with element strides s1, s2 and box (64, b1, b2),
 * 128-byte swizzle, out-of-range elements read as zero; who and what name it in the error. */
static int scb_sm90_map(scb_sm90_encode_fn enc, CUtensorMap *m, const void *ptr, uint64_t d1,
                        uint64_t d2, uint64_t s1, uint64_t s2, uint32_t b1, uint32_t b2,
                        const char *who, const char *what, struct scb_ctx *err)
{
    cuuint64_t dims[3] = {128, d1, d2};
    cuuint64_t strides[2] = {s1 * 2, s2 * 2};
    cuuint32_t box[3] = {64, b1, b2};
    cuuint32_t es[3] = {1, 1, 1};
    CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)ptr, dims, strides, box, es,
                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return scb_err(err, SCB_E_CUDA,
                       "%s: cuTensorMapEncodeTiled(%s: dims 128x%llux%llu, strides %llu, %llu "
                       "elements) failed with CUresult %d", who, what, (unsigned long long)d1,
                       (unsigned long long)d2, (unsigned long long)s1, (unsigned long long)s2,
                       (int)r);
    return SCB_OK;
}

#endif
