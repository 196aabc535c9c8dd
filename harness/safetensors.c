/* safetensors.c — mmap + validated header parsing of safetensors files and sharded sets
 * (see safetensors.h). */
#include "harness/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

struct st_file {
    char *path;              /* owned */
    void *map;               /* mmap of the whole file */
    size_t size;
};

struct scb_safetensors {
    struct st_file *files;   /* (n_files) */
    size_t n_files;
    struct scb_st_tensor *tensors;   /* (n_tensors), sorted by name; names owned */
    size_t n_tensors, cap_tensors;
    char *source;            /* owned */
};

size_t scb_dtype_size(int dtype)
{
    switch (dtype) {
    case SCB_DTYPE_F32: return 4;
    case SCB_DTYPE_F16: return 2;
    case SCB_DTYPE_BF16: return 2;
    default: return 0;
    }
}

const char *scb_dtype_name(int dtype)
{
    switch (dtype) {
    case SCB_DTYPE_F32: return "F32";
    case SCB_DTYPE_F16: return "F16";
    case SCB_DTYPE_BF16: return "BF16";
    default: return "?";
    }
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {   /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void scb_dtype_to_f32(int dtype, const void *src, float *dst, size_t n)
{
    const unsigned char *s = src;
    if (dtype == SCB_DTYPE_F32) { memcpy(dst, src, n * 4); return; }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(s[2 * i] | (s[2 * i + 1] << 8));   /* little-endian */
        if (dtype == SCB_DTYPE_BF16) {
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        } else {
            dst[i] = f16_to_f32(h);
        }
    }
}

static int parse_dtype(const char *s, int *out)
{
    static const char *const other[] = {"F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64",
                                        "BOOL", "F8_E4M3", "F8_E5M2", "C64", "F8_E8M0", "F4", NULL};
    if (!strcmp(s, "F32")) { *out = SCB_DTYPE_F32; return SCB_OK; }
    if (!strcmp(s, "F16")) { *out = SCB_DTYPE_F16; return SCB_OK; }
    if (!strcmp(s, "BF16")) { *out = SCB_DTYPE_BF16; return SCB_OK; }
    for (int i = 0; other[i]; i++)
        if (!strcmp(s, other[i])) return SCB_E_UNSUPPORTED;
    return SCB_E_FORMAT;
}

void scb_safetensors_close(struct scb_safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        scb_free(st->files[i].path);
    }
    for (size_t i = 0; i < st->n_tensors; i++) scb_free((char *)st->tensors[i].name);
    scb_free(st->files);
    scb_free(st->tensors);
    scb_free(st->source);
    scb_free(st);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct scb_st_tensor *)a)->name, ((const struct scb_st_tensor *)b)->name);
}

struct span { size_t b, e; const char *name; };
static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Map one file and add its tensors to st. */
static int add_file(struct scb_safetensors *st, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK, fd = -1;
    cJSON *hdr = NULL;
    struct span *spans = NULL;
    struct stat sb;
    struct st_file *nf = scb_realloc(st->files, (st->n_files + 1) * sizeof *nf);
    if (!nf) return scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path);
    st->files = nf;
    struct st_file *f = &st->files[st->n_files];
    memset(f, 0, sizeof *f);
    f->path = scb_strdup(path);
    if (!f->path) return scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path);
    st->n_files++;
    size_t first_tensor = st->n_tensors;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { rc = scb_err(ctx, SCB_E_IO, "%s: cannot open: %s", path, strerror(errno)); goto out; }
    if (fstat(fd, &sb) != 0) { rc = scb_err(ctx, SCB_E_IO, "%s: cannot stat: %s", path, strerror(errno)); goto out; }
    if (sb.st_size < 8) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: truncated safetensors file (%lld bytes, the header length "
                     "alone takes 8)", path, (long long)sb.st_size);
        goto out;
    }
    f->size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = scb_err(ctx, SCB_E_IO, "%s: cannot mmap: %s", path, strerror(errno));
        goto out;
    }
    const unsigned char *m = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | m[i];
    if (hlen > f->size - 8) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: header length %llu at byte 0 runs past the end of the file "
                     "(%zu bytes)", path, (unsigned long long)hlen, f->size);
        goto out;
    }
    const char *htext = (const char *)m + 8;
    const char *end_ptr = NULL;
    hdr = cJSON_ParseWithLengthOpts(htext, (size_t)hlen, &end_ptr, 0);
    if (!hdr) {
        const char *ep = cJSON_GetErrorPtr();
        size_t off = (ep && ep >= htext && ep <= htext + hlen) ? (size_t)(ep - htext) + 8 : 8;
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: invalid JSON in the safetensors header near byte %zu", path, off);
        goto out;
    }
    if (!cJSON_IsObject(hdr)) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: safetensors header is not a JSON object", path);
        goto out;
    }
    size_t data_size = f->size - 8 - (size_t)hlen;
    const unsigned char *data = m + 8 + hlen;
    size_t n_here = 0;
    for (cJSON *e = hdr->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const char *name = e->string;
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) ||
            cJSON_GetArraySize(jo) != 2) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': header entry needs \"dtype\" (string), "
                         "\"shape\" (array) and \"data_offsets\" ([begin, end])", path, name);
            goto out;
        }
        struct scb_st_tensor t = {0};
        int drc = parse_dtype(jd->valuestring, &t.dtype);
        if (drc == SCB_E_UNSUPPORTED) {
            rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16 are)",
                         path, name, jd->valuestring);
            goto out;
        }
        if (drc != SCB_OK) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);
            goto out;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > SCB_ST_MAX_DIMS) {
            rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)",
                         path, name, nd, SCB_ST_MAX_DIMS);
            goto out;
        }
        t.ndim = nd;
        uint64_t numel = 1;
        for (int i = 0; i < nd; i++) {
            uint64_t d;
            if (!json_uint(cJSON_GetArrayItem(js, i), &d)) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                             path, name, i);
                goto out;
            }
            t.shape[i] = (int64_t)d;
            if (d && numel > UINT64_MAX / d / 8) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': shape too large", path, name);
                goto out;
            }
            numel *= d;
        }
        uint64_t ob, oe;
        if (!json_uint(cJSON_GetArrayItem(jo, 0), &ob) || !json_uint(cJSON_GetArrayItem(jo, 1), &oe)) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers",
                         path, name);
            goto out;
        }
        if (ob > oe || oe > data_size) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] out of range "
                         "(data section holds %zu bytes)", path, name, (unsigned long long)ob,
                         (unsigned long long)oe, data_size);
            goto out;
        }
        uint64_t want = numel * scb_dtype_size(t.dtype);
        if (oe - ob != want) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but shape × %s "
                         "size needs %llu", path, name, (unsigned long long)(oe - ob),
                         scb_dtype_name(t.dtype), (unsigned long long)want);
            goto out;
        }
        t.numel = (size_t)numel;
        t.data = data + ob;
        t.file = f->path;
        t.name = scb_strdup(name);
        if (!t.name) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
        if (st->n_tensors == st->cap_tensors) {
            size_t nc = st->cap_tensors ? 2 * st->cap_tensors : 64;
            struct scb_st_tensor *nt = scb_realloc(st->tensors, nc * sizeof *nt);
            if (!nt) { scb_free((char *)t.name); rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
            st->tensors = nt;
            st->cap_tensors = nc;
        }
        st->tensors[st->n_tensors++] = t;
        n_here++;
    }
    /* overlapping data ranges */
    if (n_here > 1) {
        spans = scb_malloc(n_here * sizeof *spans);
        if (!spans) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
        for (size_t i = 0; i < n_here; i++) {
            const struct scb_st_tensor *t = &st->tensors[first_tensor + i];
            spans[i].b = (size_t)((const unsigned char *)t->data - data);
            spans[i].e = spans[i].b + t->numel * scb_dtype_size(t->dtype);
            spans[i].name = t->name;
        }
        qsort(spans, n_here, sizeof *spans, cmp_span);
        for (size_t i = 1; i < n_here; i++)
            if (spans[i].b < spans[i - 1].e) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap",
                             path, spans[i - 1].name, spans[i - 1].b, spans[i - 1].e, spans[i].name,
                             spans[i].b, spans[i].e);
                goto out;
            }
    }
out:
    if (fd >= 0) close(fd);
    cJSON_Delete(hdr);
    scb_free(spans);
    return rc;
}

static int finish(struct scb_safetensors *st, struct scb_ctx *ctx)
{
    if (st->n_tensors) qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, st->tensors[i - 1].name))
            return scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s' appears twice (in %s and %s)", st->source,
                           st->tensors[i].name, st->tensors[i - 1].file, st->tensors[i].file);
    return SCB_OK;
}

int scb_safetensors_open(struct scb_safetensors **out, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    *out = NULL;
    struct scb_safetensors *st = scb_calloc(1, sizeof *st);
    if (!st) return scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path);
    st->source = scb_strdup(path);
    if (!st->source) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
    SCB_TRY(add_file(st, path, ctx));
    SCB_TRY(finish(st, ctx));
    *out = st;
    st = NULL;
out:
    scb_safetensors_close(st);
    return rc;
}

int scb_safetensors_open_dir(struct scb_safetensors **out, const char *dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_safetensors *st = NULL;
    cJSON *idx = NULL;
    char *single = scb_path_join(dir, "model.safetensors");
    char *index = scb_path_join(dir, "model.safetensors.index.json");
    char *shard = NULL;
    *out = NULL;
    if (!single || !index) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if (scb_file_exists(single)) {
        rc = scb_safetensors_open(out, single, ctx);
        goto out;
    }
    if (!scb_file_exists(index)) {
        rc = scb_err(ctx, SCB_E_IO, "%s: no model.safetensors or model.safetensors.index.json in the model "
                     "directory", dir);
        goto out;
    }
    SCB_TRY(scb_json_load(index, &idx, ctx));
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: missing or empty \"weight_map\" object", index);
        goto out;
    }
    st = scb_calloc(1, sizeof *st);
    if (!st || !(st->source = scb_strdup(index))) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0]) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: weight_map entry '%s' must name a file in the directory",
                         index, e->string);
            goto out;
        }
        int have = 0;
        for (size_t i = 0; i < st->n_files && !have; i++) {
            const char *base = strrchr(st->files[i].path, '/');
            have = !strcmp(base ? base + 1 : st->files[i].path, e->valuestring);
        }
        if (have) continue;
        scb_free(shard);
        shard = scb_path_join(dir, e->valuestring);
        if (!shard) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        SCB_TRY(add_file(st, shard, ctx));
    }
    SCB_TRY(finish(st, ctx));
    for (const cJSON *e = wm->child; e; e = e->next) {
        const struct scb_st_tensor *t = scb_safetensors_find(st, e->string);
        const char *base = t ? strrchr(t->file, '/') : NULL;
        if (!t || strcmp(base ? base + 1 : t->file, e->valuestring)) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s' is listed in %s but not found there", index,
                         e->string, e->valuestring);
            goto out;
        }
    }
    *out = st;
    st = NULL;
out:
    scb_safetensors_close(st);
    cJSON_Delete(idx);
    scb_free(single);
    scb_free(index);
    scb_free(shard);
    return rc;
}

const struct scb_st_tensor *scb_safetensors_find(const struct scb_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (!c) return &st->tensors[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

size_t scb_safetensors_count(const struct scb_safetensors *st) { return st->n_tensors; }
const struct scb_st_tensor *scb_safetensors_at(const struct scb_safetensors *st, size_t i)
{
    return i < st->n_tensors ? &st->tensors[i] : NULL;
}
const char *scb_safetensors_source(const struct scb_safetensors *st) { return st->source; }
