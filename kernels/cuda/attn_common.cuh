/* attn_common.cuh — private to the attention kernels: inline-PTX wrappers (cp.async,
 * ldmatrix, mma.sync m16n8k16 bf16, ex2.approx) and the host-side validation of
 * struct scb_attn_cuda_args shared by prefill and decode. */
#ifndef SCB_KERNELS_CUDA_ATTN_COMMON_CUH
#define SCB_KERNELS_CUDA_ATTN_COMMON_CUH

#include <stdint.h>

#include "kernels/kernels_cuda.h"

/* 16-byte global->shared copy; pred false writes 16 zero bytes and reads nothing. */
static __device__ __forceinline__ void scb_cp_async16(void *smem, const void *gmem, bool pred)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n)
                 : "memory");
}
static __device__ __forceinline__ void scb_cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void scb_cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i. */
static __device__ __forceinline__ void scb_ldmatrix_x4(uint32_t r[4], const void *smem)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
static __device__ __forceinline__ void scb_ldmatrix_x4_trans(uint32_t r[4], const void *smem)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* c (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col). */
static __device__ __forceinline__ void scb_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                                    uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 2^x (ex2.approx.ftz: max rel error 2^-22; 2^-inf = 0). */
static __device__ __forceinline__ float scb_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* 1 when scb_attn_prefill_sm90_cuda can run on cc's device (compute capability 9.x and the
 * kernel built as sm_90a machine code), else 0 (attn_prefill_sm90.cu). */
int scb_attn_sm90_usable_(struct scb_cuda_ctx *cc);

static inline int scb_attn_cuda_check_(const struct scb_attn_cuda_args *a, const char *what,
                                       struct scb_ctx *err)
{
    size_t ts, hs;
    if (!a) return scb_err(err, SCB_E_INVAL, "CUDA %s attention: NULL args", what);
    if (a->Tq < 1 || a->Tk < 0 || a->Hq < 1 || a->Hkv < 1 || a->Hq % a->Hkv)
        return scb_err(err, SCB_E_INVAL,
                       "CUDA %s attention: bad shape Tq=%d Tk=%d Hq=%d Hkv=%d (need Tq>=1, "
                       "Tk>=0, Hq %% Hkv == 0)", what, a->Tq, a->Tk, a->Hq, a->Hkv);
    if (a->D != 64 && a->D != 128)
        return scb_err(err, SCB_E_INVAL, "CUDA %s attention: head dim D=%d (supported: 64, 128)",
                       what, a->D);
    ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    if (ts % 8 || hs % 8)
        return scb_err(err, SCB_E_INVAL,
                       "CUDA %s attention: KV strides (%zu, %zu) must be multiples of 8 elements",
                       what, ts, hs);
    if (!a->q || !a->out || (a->Tk > 0 && (!a->k || !a->v)))
        return scb_err(err, SCB_E_INVAL, "CUDA %s attention: NULL tensor pointer", what);
    if (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) & 15u)
        return scb_err(err, SCB_E_INVAL, "CUDA %s attention: q/k/v/out must be 16-byte aligned",
                       what);
    return SCB_OK;
}

#endif
