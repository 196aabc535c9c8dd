// mma_speed.cu: throughput of mma.sync m16n8k16 bf16 with normal vs subnormal B operands
// (8 independent accumulator chains per warp, 4096 iterations, 132*8 blocks of 128 threads).
#include <cstdio>
#include <cstdint>
__global__ void k(uint32_t b0, uint32_t b1, float *out, int iters) {
    uint32_t a[4] = {0x3f803f80u ^ threadIdx.x, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u};
    float c[8][4] = {};
    uint32_t bb0 = b0 ^ (threadIdx.x & 1), bb1 = b1;
    for (int it = 0; it < iters; it++) {
#pragma unroll
        for (int j = 0; j < 8; j++)
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                         : "+f"(c[j][0]), "+f"(c[j][1]), "+f"(c[j][2]), "+f"(c[j][3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(bb0), "r"(bb1));
    }
    float s = 0; for (int j = 0; j < 8; j++) s += c[j][0] + c[j][1] + c[j][2] + c[j][3];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}
int main() {
    float *o; cudaMalloc(&o, 132 * 8 * 128 * 4);
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    const char *nm[3] = {"normal (0x3f80 = 1.0)", "subnormal (0x0003)", "first normal binade (0x00c0)"};
    uint32_t bs[3] = {0x3f803f80u, 0x00030002u, 0x00c000c1u};
    for (int rep = 0; rep < 2; rep++)
    for (int v = 0; v < 3; v++) {
        k<<<132 * 8, 128>>>(bs[v], bs[v], o, 64);
        cudaEventRecord(e0);
        k<<<132 * 8, 128>>>(bs[v], bs[v], o, 4096);
        cudaEventRecord(e1); cudaEventSynchronize(e1);
        float ms; cudaEventElapsedTime(&ms, e0, e1);
        double fl = 132.0 * 8 * 4 * 4096 * 8 * 2 * 16 * 8 * 16;
        if (rep) printf("mma bf16 B %-30s %.3f ms  %.1f TFLOP/s\n", nm[v], ms, fl / ms / 1e9);
    }
    return 0;
}
