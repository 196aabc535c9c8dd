// dn_test.cu: do sm_90 tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate) take bf16
// SUBNORMAL operands exactly? A = normal factors scaled by 2^64, B = codes 0..15 as raw bf16 bits
// (c * 2^-133); expect D = sum_k A*c*2^-133 exactly (compared in double).
#include <cstdio>
#include <cstdint>
#include <cmath>
#include <cuda_bf16.h>
__global__ void k(const uint32_t *A, const uint32_t *B, float *D) {
    int lane = threadIdx.x;
    uint32_t a[4] = {A[lane * 4], A[lane * 4 + 1], A[lane * 4 + 2], A[lane * 4 + 3]};
    uint32_t b[2] = {B[lane * 2], B[lane * 2 + 1]};
    float c[4] = {0, 0, 0, 0};
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    for (int i = 0; i < 4; i++) D[lane * 4 + i] = c[i];
}
static float bf(uint16_t u) { uint32_t x = (uint32_t)u << 16; float f; memcpy(&f, &x, 4); return f; }
#include <cstring>
static uint16_t tobf(float f) { uint32_t x; memcpy(&x, &f, 4); return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16); }
int main() {
    // row-major A 16x16 and col-major B 16x8 in fragment order
    float Am[16][16]; uint16_t Ab[16][16]; uint16_t Bb[16][8];
    srand(7);
    for (int r = 0; r < 16; r++) for (int k = 0; k < 16; k++) { Am[r][k] = ((rand() % 2000) - 1000) / 37.0f * ldexpf(1.0f, 64); Ab[r][k] = tobf(Am[r][k]); }
    for (int k = 0; k < 16; k++) for (int n = 0; n < 8; n++) Bb[k][n] = (uint16_t)(rand() % 16);
    uint32_t hA[32 * 4], hB[32 * 2];
    for (int lane = 0; lane < 32; lane++) {
        int g = lane >> 2, t = lane & 3;
        auto pk = [](uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); };
        hA[lane * 4 + 0] = pk(Ab[g][2 * t], Ab[g][2 * t + 1]);
        hA[lane * 4 + 1] = pk(Ab[g + 8][2 * t], Ab[g + 8][2 * t + 1]);
        hA[lane * 4 + 2] = pk(Ab[g][2 * t + 8], Ab[g][2 * t + 9]);
        hA[lane * 4 + 3] = pk(Ab[g + 8][2 * t + 8], Ab[g + 8][2 * t + 9]);
        hB[lane * 2 + 0] = pk(Bb[2 * t][g], Bb[2 * t + 1][g]);
        hB[lane * 2 + 1] = pk(Bb[2 * t + 8][g], Bb[2 * t + 9][g]);
    }
    uint32_t *dA, *dB; float *dD; cudaMalloc(&dA, sizeof hA); cudaMalloc(&dB, sizeof hB); cudaMalloc(&dD, 512);
    cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice); cudaMemcpy(dB, hB, sizeof hB, cudaMemcpyHostToDevice);
    ::k<<<1, 32>>>(dA, dB, dD); float hD[128]; cudaMemcpy(hD, dD, 512, cudaMemcpyDeviceToHost);
    double worst = 0; int zero = 0;
    for (int lane = 0; lane < 32; lane++) for (int i = 0; i < 4; i++) {
        int g = lane >> 2, t = lane & 3, r = g + (i >= 2 ? 8 : 0), n = 2 * t + (i & 1);
        double ref = 0, mag = 0; for (int kk = 0; kk < 16; kk++) { double t = (double)bf(Ab[r][kk]) * (double)Bb[kk][n] * ldexp(1.0, -133); ref += t; mag += fabs(t); }
        double got = hD[lane * 4 + i];
        if (got == 0 && ref != 0) zero++;
        double e = fabs(got - ref) / (mag > 0 ? mag : 1); if (e > worst) worst = e;
    }
    printf("subnormal bf16 B operand: max rel err %.3e, %d outputs flushed to zero -> %s\n", worst, zero,
           (worst < 1e-6 && zero == 0) ? "SUBNORMALS EXACT" : "NOT SUPPORTED");
    return 0;
}
