#!/usr/bin/env python3
"""The eager anchor for bench/forward.ts: a gpt-oss forward in numpy (float32, OpenBLAS) following
Hugging Face transformers' eager algorithm (GptOssExperts on CPU): experts dequantised to float32
once at load, then per layer a loop over the experts that received tokens, each multiplying only its
routed rows (gate_up, clamped SwiGLU, down), weighted and index-added into the output; eager
attention with sinks (scores, mask, sink column, softmax, drop the sink, @ V). Logits at the last
position only, as the engine's benchmark asks for.

Protocol (driven by bench/forward.ts): argv[1] is the checkpoint directory; it loads, prints one JSON
line {"ready": ..., "loadS": ...}, then reads JSON lines {"tokens": [...]} and answers each with
{"seconds": wall, "logits": [first 8 values], "top": argmax}. Threads follow OPENBLAS_NUM_THREADS.
"""
import json
import math
import os
import sys
import time

import numpy as np

FP4 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)


def read_checkpoint(d):
    index = os.path.join(d, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    tensors = {}
    for f in files:
        path = os.path.join(d, f)
        with open(path, 'rb') as fh:
            n = int.from_bytes(fh.read(8), 'little')
            header = json.loads(fh.read(n))
        data = np.memmap(path, dtype=np.uint8, mode='r', offset=8 + n)
        for name, info in header.items():
            if name == '__metadata__':
                continue
            a, b = info['data_offsets']
            tensors[name] = (info['dtype'], info['shape'], data[a:b])
    return tensors


def f32(t):
    dtype, shape, raw = t
    if dtype == 'BF16':
        return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype == 'F32':
        return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
    raise ValueError(f'unsupported dtype {dtype}')


def dequant(blocks, scales):
    """MXFP4 [..., G, 16] bytes + [..., G] scale bytes -> float32 [..., G*32]."""
    b = np.asarray(blocks)
    lo, hi = FP4[b & 0x0F], FP4[b >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*b.shape[:-1], 32)
    scale = np.ldexp(np.float32(1), np.asarray(scales).astype(np.int32) - 127).astype(np.float32)
    return (vals * scale[..., None]).reshape(*b.shape[:-2], -1)


class Model:
    def __init__(self, d):
        cfg = json.load(open(os.path.join(d, 'config.json')))
        self.cfg = cfg
        t = read_checkpoint(d)
        self.H, self.nH, self.nKV, self.dh = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['head_dim']
        self.E, self.k, self.limit, self.eps = cfg['num_local_experts'], cfg['num_experts_per_tok'], cfg['swiglu_limit'], cfg['rms_norm_eps']
        self.window = cfg['sliding_window']
        L = cfg['num_hidden_layers']
        self.types = cfg.get('layer_types') or ['sliding_attention' if i % 2 == 0 else 'full_attention' for i in range(L)]
        self.embed = t['model.embed_tokens.weight']
        self.layers = []
        for i in range(L):
            p = f'model.layers.{i}.'
            g = lambda n: f32(t[p + n])
            x = p + 'mlp.experts.'
            packed = lambda n: t[x + n][2].reshape(t[x + n][1])
            # One expert at a time, so the decode's temporaries stay small.
            experts = lambda m: [np.ascontiguousarray(dequant(packed(m + '_blocks')[e], packed(m + '_scales')[e]).T) for e in range(self.E)]
            self.layers.append(dict(
                ln1=g('input_layernorm.weight'), ln2=g('post_attention_layernorm.weight'),
                q=g('self_attn.q_proj.weight').T.copy(), qb=g('self_attn.q_proj.bias'),
                k=g('self_attn.k_proj.weight').T.copy(), kb=g('self_attn.k_proj.bias'),
                v=g('self_attn.v_proj.weight').T.copy(), vb=g('self_attn.v_proj.bias'),
                o=g('self_attn.o_proj.weight').T.copy(), ob=g('self_attn.o_proj.bias'),
                sinks=g('self_attn.sinks'), router=g('mlp.router.weight').T.copy(), routerb=g('mlp.router.bias'),
                # HF keeps experts as [E, in, out] and multiplies x @ W.
                gu=experts('gate_up_proj'), gub=f32(t[x + 'gate_up_proj_bias']),
                dn=experts('down_proj'), dnb=f32(t[x + 'down_proj_bias']),
            ))
        self.norm = f32(t['model.norm.weight'])
        self.lm_head = f32(t['lm_head.weight']).T.copy()
        rs = cfg['rope_scaling']
        d = self.dh
        freq = cfg['rope_theta'] ** (np.arange(0, d, 2, dtype=np.float32) / d)
        factor = rs['factor']
        self.concentration = 0.1 * math.log(factor) + 1
        L0 = rs['original_max_position_embeddings']
        low = d / 2 * math.log(L0 / (rs['beta_fast'] * 2 * math.pi)) / math.log(cfg['rope_theta'])
        high = d / 2 * math.log(L0 / (rs['beta_slow'] * 2 * math.pi)) / math.log(cfg['rope_theta'])
        ramp = np.clip((np.arange(d // 2, dtype=np.float32) - low) / (high - low), 0, 1)
        mask = 1 - ramp
        self.inv_freq = ((1 / (factor * freq)) * (1 - mask) + (1 / freq) * mask).astype(np.float32)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, cos, sin):
        h = self.dh // 2
        x1, x2 = x[..., :h], x[..., h:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def forward(self, ids):
        T = len(ids)
        x = f32(('BF16', [T, self.H], np.concatenate([self.embed[2][i * self.H * 2:(i + 1) * self.H * 2] for i in ids])))
        ang = np.arange(T, dtype=np.float32)[:, None] * self.inv_freq[None, :]
        cos = (np.cos(ang) * self.concentration)[:, None, :].astype(np.float32)
        sin = (np.sin(ang) * self.concentration)[:, None, :].astype(np.float32)
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        G = self.nH // self.nKV
        for li, w in enumerate(self.layers):
            n = self.rms(x, w['ln1'])
            q = self.rope((n @ w['q'] + w['qb']).reshape(T, self.nH, self.dh), cos, sin)
            k = self.rope((n @ w['k'] + w['kb']).reshape(T, self.nKV, self.dh), cos, sin)
            v = (n @ w['v'] + w['vb']).reshape(T, self.nKV, self.dh)
            k = np.repeat(k, G, axis=1)  # repeat_kv, as HF does
            v = np.repeat(v, G, axis=1)
            scores = np.einsum('qhd,khd->hqk', q, k) / math.sqrt(self.dh)
            masked = j > i
            if self.types[li] == 'sliding_attention':
                masked = masked | (i - j >= self.window)
            scores = np.where(masked[None], np.float32(-np.inf), scores)
            full = np.concatenate([scores, np.broadcast_to(w['sinks'][:, None, None], (self.nH, T, 1))], axis=-1)
            full = full - full.max(axis=-1, keepdims=True)
            p = np.exp(full)
            p = (p / p.sum(axis=-1, keepdims=True))[..., :-1]
            z = np.einsum('hqk,khd->qhd', p, v).reshape(T, self.nH * self.dh)
            x = x + z @ w['o'] + w['ob']
            n = self.rms(x, w['ln2'])
            logits = n @ w['router'] + w['routerb']
            top = np.argsort(-logits, axis=-1, kind='stable')[:, :self.k]
            tl = np.take_along_axis(logits, top, axis=-1)
            rw = np.exp(tl - tl.max(axis=-1, keepdims=True))
            rw = rw / rw.sum(axis=-1, keepdims=True)
            out = np.zeros_like(x)
            for e in np.unique(top):
                tok, slot = np.nonzero(top == e)
                h = n[tok] @ w['gu'][e] + w['gub'][e]
                gate, up = np.minimum(h[:, ::2], self.limit), np.clip(h[:, 1::2], -self.limit, self.limit)
                act = (up + 1) * (gate / (1 + np.exp(-1.702 * gate)))
                y = act @ w['dn'][e] + w['dnb'][e]
                out[tok] += y * rw[tok, slot][:, None]  # index_add_: a token routes to an expert at most once
            x = x + out
        return self.rms(x[-1:], self.norm) @ self.lm_head


def main():
    t0 = time.perf_counter()
    m = Model(sys.argv[1])
    print(json.dumps({'ready': True, 'loadS': time.perf_counter() - t0}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        t = time.perf_counter()
        logits = m.forward(req['tokens'])
        print(json.dumps({'seconds': time.perf_counter() - t, 'logits': logits[0, :8].tolist(), 'top': int(np.argmax(logits[0]))}), flush=True)


if __name__ == '__main__':
    main()
