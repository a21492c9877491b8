/*
 * tradeplane_cpamm: a constant-product AMM (x * y = k) for SPL Token pairs, as a Solana
 * program (SBPFv0). Built with Debian's clang (`-target bpf`) and hack/sbf_link.py by
 * hack/compile-solana-program; the runtime's client mirrors its math exactly
 * (module_runtime/solana/pool.py).
 *
 * Why C and not Rust: no Solana Rust toolchain (platform-tools) can be had from the
 * package registries here; Debian's clang emits eBPF that the SBPFv0 loader runs.
 * Constraints that follow: no static data (the linker handles only syscall relocations),
 * every helper inlined, no 128-bit builtins (64-bit limbs by hand).
 *
 * Accounts are the loader's aligned serialization. Pool state (program-owned, 152 bytes):
 *   0 magic "TPCPAMM1" | 8 mint_a | 40 mint_b | 72 vault_a | 104 vault_b | 136 fee_bps u64
 *   | 144 bump u64. The vaults are SPL token accounts owned by the authority PDA
 *   [pool key, bump].
 *
 * Instructions (first byte):
 *   0 InitPool  data: fee_bps u64, bump u8
 *               accounts: pool (w), vault_a, vault_b, authority
 *   1 Swap      data: amount_in u64, min_out u64
 *               accounts: pool, authority, user_src (w), user_dst (w), vault_in (w),
 *                         vault_out (w), user (signer), token program
 *      out = reserve_out * in * (10000 - fee) / (reserve_in * 10000 + in * (10000 - fee)),
 *      rounded down; refused with error 1 when out < min_out.
 *
 * Errors (InstructionError::Custom): 1 slippage (out < min_out), 2 zero output,
 * 3 bad accounts, 4 bad instruction data, 5 pool state (uninitialized / initialized),
 * 6 amount too large.
 */
typedef unsigned long u64;
typedef unsigned char u8;

#define INLINE static inline __attribute__((always_inline))
#define ERR_SLIPPAGE 1
#define ERR_ZERO_OUT 2
#define ERR_ACCOUNTS 3
#define ERR_DATA 4
#define ERR_STATE 5
#define ERR_TOO_LARGE 6
#define MAGIC 0x314d4d4150435054UL /* "TPCPAMM1" little endian */
#define STATE_LEN 152
#define TOKEN_ACCOUNT_LEN 165
#define MAX_ACCOUNTS 8
#define REALLOC_PADDING 10240
#define HEAP_START 0x300000000UL

typedef struct { u8 x[32]; } Pubkey;
typedef struct {
  const Pubkey *key; u64 *lamports; u64 data_len; u8 *data; const Pubkey *owner;
  u64 rent_epoch; u8 is_signer; u8 is_writable; u8 executable;
} AccountInfo;
typedef struct { const Pubkey *pubkey; u8 is_writable; u8 is_signer; } AccountMeta;
typedef struct {
  const Pubkey *program_id; const AccountMeta *accounts; u64 account_len;
  const u8 *data; u64 data_len;
} Instruction;
typedef struct { const u8 *addr; u64 len; } Seed;
typedef struct { const Seed *addr; u64 len; } Seeds;

/* Scratch for the account table, the CPIs and the PDA check. It lives at the start of the
 * program's heap region (32 KiB at HEAP_START, zeroed per invocation), not on the stack:
 * the LLVM BPF backend refuses frames over 512 bytes (Solana allows 4 KiB). */
typedef struct {
  u8 *acc[MAX_ACCOUNTS];
  AccountMeta metas[3];
  AccountInfo infos[3];
  Instruction ix;
  u8 data[16];
  Seed seed[2];
  Seeds seeds;
  Pubkey derived;
} Scratch;

extern u64 sol_invoke_signed_c(const Instruction *, const AccountInfo *, u64, const Seeds *, u64);
extern u64 sol_create_program_address(const Seed *, u64, const Pubkey *, Pubkey *);

/* one serialized account: offsets into the loader's aligned layout */
#define A_SIGNER(a) ((a)[1])
#define A_WRITABLE(a) ((a)[2])
#define A_KEY(a) ((const Pubkey *)((a) + 8))
#define A_OWNER(a) ((const Pubkey *)((a) + 40))
#define A_LAMPORTS(a) ((u64 *)((a) + 72))
#define A_LEN(a) (*(u64 *)((a) + 80))
#define A_DATA(a) ((a) + 88)

INLINE u64 load64(const u8 *p) {
  u64 v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

INLINE int key_eq(const void *a, const void *b) {
  const u64 *x = (const u64 *)a, *y = (const u64 *)b;
  return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

INLINE int is_token_program(const Pubkey *k) {
  const u64 *x = (const u64 *)k;
  return x[0] == 0x93a165d7e1f6dd06UL && x[1] == 0xac79ebce46e1cbd9UL &&
         x[2] == 0x91375b5fed85b41cUL && x[3] == 0xa900ff7e85f58c3aUL;
}

INLINE int is_token_account(const u8 *a) {
  return is_token_program(A_OWNER(a)) && A_LEN(a) == TOKEN_ACCOUNT_LEN;
}

INLINE u64 token_amount(const u8 *a) { return *(const u64 *)(A_DATA(a) + 64); }

/* (hi, lo) = a * b */
INLINE void mul64(u64 a, u64 b, u64 *hi, u64 *lo) {
  u64 a0 = a & 0xffffffffUL, a1 = a >> 32, b0 = b & 0xffffffffUL, b1 = b >> 32;
  u64 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  u64 mid = (p00 >> 32) + (p01 & 0xffffffffUL) + (p10 & 0xffffffffUL);
  *lo = (p00 & 0xffffffffUL) | (mid << 32);
  *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/* floor((nh, nl) / (dh, dl)), the quotient known to fit in 64 bits; d > 0 */
INLINE u64 div128(u64 nh, u64 nl, u64 dh, u64 dl) {
  u64 rh = 0, rl = 0, q = 0;
  for (int i = 127; i >= 0; i--) {
    rh = (rh << 1) | (rl >> 63);
    rl = (rl << 1) | ((i >= 64 ? (nh >> (i - 64)) : (nl >> i)) & 1);
    if (rh > dh || (rh == dh && rl >= dl)) {
      u64 borrow = rl < dl;
      rl -= dl;
      rh -= dh + borrow;
      if (i < 64) q |= 1UL << i;
    }
  }
  return q;
}

INLINE void info_of(AccountInfo *info, u8 *a) {
  info->key = A_KEY(a);
  info->lamports = A_LAMPORTS(a);
  info->data_len = A_LEN(a);
  info->data = A_DATA(a);
  info->owner = A_OWNER(a);
  info->rent_epoch = 0;
  info->is_signer = A_SIGNER(a);
  info->is_writable = A_WRITABLE(a);
  info->executable = 0;
}

/* SPL Token Transfer (instruction 3) of `amount` from src to dst by `authority` */
INLINE u64 transfer(Scratch *s, u8 *token_program, u8 *src, u8 *dst, u8 *authority, u64 amount,
                    u64 signed_by_pda) {
  AccountMeta *metas = s->metas;
  AccountInfo *infos = s->infos;
  u8 *data = s->data;
  data[0] = 3;
  for (int i = 0; i < 8; i++) data[1 + i] = (u8)(amount >> (8 * i));
  metas[0].pubkey = A_KEY(src); metas[0].is_writable = 1; metas[0].is_signer = 0;
  metas[1].pubkey = A_KEY(dst); metas[1].is_writable = 1; metas[1].is_signer = 0;
  metas[2].pubkey = A_KEY(authority); metas[2].is_writable = 0; metas[2].is_signer = 1;
  info_of(&infos[0], src);
  info_of(&infos[1], dst);
  info_of(&infos[2], authority);
  if (signed_by_pda) infos[2].is_signer = 1;
  s->ix.program_id = A_KEY(token_program);
  s->ix.accounts = metas;
  s->ix.account_len = 3;
  s->ix.data = data;
  s->ix.data_len = 9;
  s->seeds.addr = s->seed;
  s->seeds.len = 2;
  return sol_invoke_signed_c(&s->ix, infos, 3, &s->seeds, signed_by_pda ? 1 : 0);
}

/* the PDA seeds [pool key, bump] into s->seed; whether they derive `authority` */
INLINE int authority_ok(Scratch *s, const u8 *pool, const u8 *authority, const Pubkey *program_id,
                        const u8 *bump) {
  s->seed[0].addr = (const u8 *)A_KEY(pool); s->seed[0].len = 32;
  s->seed[1].addr = bump; s->seed[1].len = 1;
  if (sol_create_program_address(s->seed, 2, program_id, &s->derived) != 0) return 0;
  return key_eq(&s->derived, A_KEY(authority));
}

INLINE u64 init_pool(Scratch *s, u8 **acc, u64 n, const u8 *data, u64 len, const Pubkey *program_id) {
  if (n != 4) return ERR_ACCOUNTS;
  if (len != 10) return ERR_DATA;
  u8 *pool = acc[0], *va = acc[1], *vb = acc[2], *authority = acc[3];
  u64 fee = load64(data + 1);
  const u8 *bump = data + 9;
  if (fee >= 10000) return ERR_DATA;
  if (!key_eq(A_OWNER(pool), program_id) || !A_WRITABLE(pool) || A_LEN(pool) < STATE_LEN)
    return ERR_ACCOUNTS;
  u8 *state = A_DATA(pool);
  if (*(u64 *)state != 0) return ERR_STATE;
  if (!is_token_account(va) || !is_token_account(vb)) return ERR_ACCOUNTS;
  if (key_eq(A_KEY(va), A_KEY(vb)) || key_eq(A_DATA(va), A_DATA(vb))) return ERR_ACCOUNTS;
  if (!authority_ok(s, pool, authority, program_id, bump)) return ERR_ACCOUNTS;
  if (!key_eq(A_DATA(va) + 32, A_KEY(authority)) || !key_eq(A_DATA(vb) + 32, A_KEY(authority)))
    return ERR_ACCOUNTS;
  u64 *out = (u64 *)state;
  const u64 *ma = (const u64 *)A_DATA(va), *mb = (const u64 *)A_DATA(vb);
  const u64 *ka = (const u64 *)A_KEY(va), *kb = (const u64 *)A_KEY(vb);
  for (int i = 0; i < 4; i++) {
    out[1 + i] = ma[i];
    out[5 + i] = mb[i];
    out[9 + i] = ka[i];
    out[13 + i] = kb[i];
  }
  out[17] = fee;
  out[18] = *bump;
  out[0] = MAGIC;
  return 0;
}

INLINE u64 swap(Scratch *s, u8 **acc, u64 n, const u8 *data, u64 len, const Pubkey *program_id) {
  if (n != 8) return ERR_ACCOUNTS;
  if (len != 17) return ERR_DATA;
  u8 *pool = acc[0], *authority = acc[1], *src = acc[2], *dst = acc[3];
  u8 *vin = acc[4], *vout = acc[5], *user = acc[6], *token_program = acc[7];
  u64 amount_in = load64(data + 1), min_out = load64(data + 9);
  if (!key_eq(A_OWNER(pool), program_id) || A_LEN(pool) < STATE_LEN) return ERR_ACCOUNTS;
  const u8 *state = A_DATA(pool);
  if (*(const u64 *)state != MAGIC) return ERR_STATE;
  const Pubkey *va = (const Pubkey *)(state + 72), *vb = (const Pubkey *)(state + 104);
  int forward = key_eq(A_KEY(vin), va) && key_eq(A_KEY(vout), vb);
  int backward = key_eq(A_KEY(vin), vb) && key_eq(A_KEY(vout), va);
  if (!(forward || backward)) return ERR_ACCOUNTS;
  if (!is_token_program(A_KEY(token_program)) || !A_SIGNER(user)) return ERR_ACCOUNTS;
  if (!is_token_account(vin) || !is_token_account(vout)) return ERR_ACCOUNTS;
  const u8 *bump = state + 144; /* low byte of the u64 */
  if (!authority_ok(s, pool, authority, program_id, bump)) return ERR_ACCOUNTS;
  u64 fee = *(const u64 *)(state + 136);
  u64 reserve_in = token_amount(vin), reserve_out = token_amount(vout);
  if (amount_in == 0) return ERR_DATA;
  if (amount_in > 0xffffffffffffffffUL / 10000) return ERR_TOO_LARGE;
  u64 in_with_fee = amount_in * (10000 - fee);
  u64 nh, nl, dh, dl;
  mul64(reserve_out, in_with_fee, &nh, &nl);
  mul64(reserve_in, 10000, &dh, &dl);
  u64 sum = dl + in_with_fee;
  dh += sum < dl;
  dl = sum;
  u64 out = div128(nh, nl, dh, dl);
  if (out == 0) return ERR_ZERO_OUT;
  if (out < min_out) return ERR_SLIPPAGE;
  u64 err = transfer(s, token_program, src, vin, user, amount_in, 0);
  if (err) return err;
  return transfer(s, token_program, vout, dst, authority, out, 1); /* seeds still in s->seed */
}

u64 entrypoint(u8 *input) {
  u64 n = *(u64 *)input;
  u8 *p = input + 8;
  Scratch *s = (Scratch *)HEAP_START;
  u8 **acc = s->acc;
  if (n > MAX_ACCOUNTS) return ERR_ACCOUNTS;
  for (u64 i = 0; i < n; i++) {
    if (p[0] == 0xff) {
      acc[i] = p;
      p += 88 + A_LEN(p) + REALLOC_PADDING;
      p = (u8 *)(((u64)p + 7) & ~7UL);
      p += 8; /* rent epoch */
    } else {
      acc[i] = acc[p[0]];
      p += 8;
    }
  }
  u64 len = *(u64 *)p;
  const u8 *data = p + 8;
  const Pubkey *program_id = (const Pubkey *)(data + len);
  if (len == 0) return ERR_DATA;
  if (data[0] == 0) return init_pool(s, acc, n, data, len, program_id);
  if (data[0] == 1) return swap(s, acc, n, data, len, program_id);
  return ERR_DATA;
}
