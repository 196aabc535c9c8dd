#!/usr/bin/env python3
"""gen_jinja_cases.py — writes tests/test_jinja_cases.h: small templates, their variables and
the output python jinja2 gives them in transformers' configuration (its own
_compile_jinja_template: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, the generation tag, tojson = json.dumps(ensure_ascii=False), globals
raise_exception / strftime_now / namespace / dict; strftime_now's clock fixed). The CMocka test test_jinja.c renders each
template with scbench's interpreter and compares. Rerun after editing CASES:

    python3 tools/gen_jinja_cases.py > tests/test_jinja_cases.h
"""
import json
import sys
from datetime import datetime, timezone

import jinja2

FIXED = 1726401600  # 2024-09-15 12:00:00 UTC, the time the C test passes


class _Env:
    """transformers' own jinja2 environment (its _compile_jinja_template), clock fixed."""

    def from_string(self, src):
        import transformers.utils.chat_template_utils as ctu

        class Fixed(datetime):
            @classmethod
            def now(cls, tz=None):
                return datetime.fromtimestamp(FIXED, tz=timezone.utc).replace(tzinfo=None)

        ctu.datetime = Fixed
        ctu._compile_jinja_template.cache_clear()
        return ctu._compile_jinja_template(src)


def make_env():
    return _Env()


MSGS = {"messages": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi ü\n"},
                     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]}

# (template, variables)
CASES = [
    ("plain text", {}),
    ("{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ 2.5 }}{{ true }}{{ false }}{{ none }}", {}),
    ("{{ x }}|{{ y }}|{{ z }}|{{ w }}", {"x": 3, "y": 0.1, "z": None, "w": [1, "a", None, True]}),
    ("{{ d }}", {"d": {"a": 1, "b": "it's", "c": [1.5, 1e20, 1e-7]}}),
    ("[{{ missing }}]", {}),
    ("a  {{- ' b ' -}}  c", {}),
    ("a\n  {%- if true %} yes {% endif -%}\n  b", {}),
    ("line1\n    {% if true %}\n    inside\n    {% endif %}\nline2\n", {}),
    ("x {# comment #} y\n  {# own line #}\nz", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": 0, "b": ""}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": 0, "b": "x"}),
    ("{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}:{{ m.role }};{% endfor %}", MSGS),
    ("{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m['role'][0] }}{{ loop.length }},{% endfor %}", MSGS),
    ("{% for x in [] %}no{% else %}empty{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set t = (1, 2) %}{{ t }}{{ (3,) }}", {}),
    ("{% set blk %}inner {{ 1 + 1 }}{% endset %}[{{ blk }}]", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", {}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 - 4 }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' > 'a' }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 2 not in [1,3] }} {{ 'k' in {'k': 1} }} {{ not 0 }}", {}),
    ("{{ x and y }}|{{ x or y }}|{{ 0 or none }}|{{ 'a' if x else 'b' }}|{{ 'a' if y }}", {"x": "X", "y": ""}),
    ("{{ u is defined }} {{ u is undefined }} {{ n is none }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ l is sequence }} {{ 3 is number }} {{ 3 is integer }} {{ 3.0 is float }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ s is not none }} {{ t is boolean }} {{ t is true }} {{ 'x' is eq 'x' }}", {"n": None, "s": "str", "d": {}, "l": [1], "t": True}),
    ("{{ s[0] }}{{ s[-1] }}{{ s[1:3] }}{{ s[::-1] }}{{ s[::2] }}{{ l[1:] }}{{ l[:-1] }}{{ l[::-1] }}{{ s[10:] }}|{{ s[-2:] }}", {"s": "héllo", "l": [1, 2, 3]}),
    ("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.strip(' x') }}|{{ s.upper() }}|{{ s.lower() }}|{{ s.title() }}|{{ s.replace('a', 'o') }}|{{ s.split() }}|{{ s.split('a') }}|{{ s.split('a', 1) }}|{{ s.startswith('  x') }}|{{ s.endswith('b ') }}|{{ s.count('a') }}|{{ s.find('a') }}", {"s": "  xa bA ab "}),
    ("{{ c.split('</think>')[-1].lstrip('\\n') }}|{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}", {"c": "<think>\nwhy\n</think>\n\nanswer"}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.a }} {{ d['b'] }}", {"d": {"a": 1, "b": [2]}}),
    ("{{ s | length }} {{ l | length }} {{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ s | capitalize }}|{{ s | title }}|{{ s | replace('b', 'B') }}|{{ l | join(', ') }}|{{ l | first }}|{{ l | last }}|{{ u | default('dflt') }}|{{ '' | default('e', true) }}|{{ 3 | string }}{{ '42' | int + 1 }}{{ '4.5' | float }}{{ 'x' | int }}", {"s": " aBc-déf gh(ij ", "l": [3, 1, 2]}),
    ("{{ l | sort | list }} {{ l | sort(reverse=true) | list }} {{ w | sort | list }} {{ l | reverse | list }} {{ [1,2,1,3] | unique | list }} {{ l | min }} {{ l | max }} {{ l | sum }} {{ -3.7 | abs }} {{ 2.5 | round }} {{ 3.14159 | round(2) }}", {"l": [3, 1, 2], "w": ["b", "A", "a", "C"]}),
    ("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }}#{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}#{{ messages | map(attribute='role') | map('upper') | join(',') }}#{{ [0, 1, '', 'a'] | select | list }}#{{ [1, 2, 3, 4] | reject('odd') | list }}", MSGS),
    ("{{ x | tojson }}\n{{ x | tojson(indent=2) }}\n{{ s | tojson }}\n{{ [] | tojson(indent=4) }}{{ {} | tojson }}{{ x | tojson(separators=(',', ':')) }}{{ x | tojson(sort_keys=true) }}", {"x": {"b": [1, 2.5, None, True, "é\"\\\n\t\u0001"], "a": {"c": {}}}, "s": "<tag>&'"}),
    ("{{ text | indent(2) }}|{{ text | indent(2, true) }}|{{ text | indent('>>', first=true, blank=true) }}", {"text": "a\n\nb\nc"}),
    ("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}", {}),
    ("{% for c in 'ab' %}{{ c }}-{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", {}),
    ("{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.last }}{% endfor %}", {}),
    ("{{ loop_messages }}{% set loop_messages = messages[1:] %}{{ loop_messages | length }}{{ messages[0]['content'] | trim }}{{ messages[1].content }}", MSGS),
    ("{%- if messages[0]['role'] == 'system' %}\n    {%- set sys = messages[0]['content'] %}\n{%- endif %}\n{{- bos_token }}\n{%- for m in messages %}\n    {{- '[' + m['role'] + '] ' + m['content'] | trim + '\\n' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '[assistant] ' }}\n{%- endif %}\n", dict(MSGS, bos_token="<s>", add_generation_prompt=True)),
    ("{{ 'a' 'b' }} {{ \"it\\'s\" }} {{ '\\u00e9\\x41\\t|' }} {{ {'k': [1, {'z': none}]} }} {{ [1, 2][0] }} {{ {'a': 1}['a'] }}", {}),
    ("{{ x is mapping }} {{ x is iterable }} {{ x is string }} {{ y is mapping }} {{ y is sequence }}", {"x": "s", "y": {"k": 1}}),
    ("{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 123456789.0 }} {{ 1.5e-5 }} {{ -0.0 }} {{ 10 / 4 }} {{ 2 ** -1 }} {{ 3 * 1.0 }}", {}),
]

# (template, variables, substring the error message must contain, line)
ERRORS = [
    ("{% if x %}\nno end", {}, "expects 'elif' or 'else' or 'endif'", 2),
    ("ok\n{{ x | wordwrap }}", {}, "unsupported filter 'wordwrap'", 2),
    ("a\nb\n{% include 'x.html' %}", {}, "unknown tag 'include'", 3),
    ("{{ raise_exception('Roles must alternate!') }}", {}, "raise_exception: Roles must alternate!", 1),
    ("{{ 1 +  }}", {}, "expected an expression", 1),
    ("\n\n{% for x in y %}{% endif %}", {}, "unexpected 'endif'", 3),
    ("{{ x.y.z }}", {}, "'x' is undefined", 1),
    ("{{ 'abc' ", {}, "unexpected end of template", 1),
    ("{# open comment", {}, "missing end of comment", 1),
    ("{% for m in messages %}\n{{ m is fancy }}{% endfor %}", {}, "unsupported test 'fancy'", 2),
]


def c_str(s):
    out = ['"']
    for ch in s.encode("utf-8"):
        c = chr(ch)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append('\\n"\n        "')
        elif 32 <= ch < 127 and c != "?":
            out.append(c)
        else:
            out.append("\\%03o" % ch)
    out.append('"')
    return "".join(out)


def main():
    env = make_env()
    print("/* test_jinja_cases.h — generated by tools/gen_jinja_cases.py from python jinja2 %s in\n"
          " * transformers' configuration. Do not edit; edit the generator and rerun it. */" % jinja2.__version__)
    print("struct jcase { const char *tmpl; const char *vars; const char *expect; };")
    print("static const struct jcase jinja_cases[] = {")
    for tmpl, vars_ in CASES:
        out = env.from_string(tmpl).render(**vars_)
        print("    {%s,\n     %s,\n     %s}," % (c_str(tmpl), c_str(json.dumps(vars_, ensure_ascii=False)), c_str(out)))
    print("};")
    print("struct jerr { const char *tmpl; const char *vars; const char *msg; int line; };")
    print("static const struct jerr jinja_errors[] = {")
    for tmpl, vars_, msg, line in ERRORS:
        try:
            env.from_string(tmpl).render(**vars_)
            sys.exit(f"expected jinja2 to fail on {tmpl!r}")
        except Exception as e:  # TemplateError, UndefinedError; include fails for want of a loader
            lineno = getattr(e, "lineno", None)
            if lineno is not None and lineno != line:
                sys.exit(f"jinja2 reports line {lineno} for {tmpl!r}, table says {line}")
        print("    {%s, %s, %s, %d}," % (c_str(tmpl), c_str(json.dumps(vars_)), c_str(msg), line))
    print("};")
    print("#define JINJA_FIXED_TIME %dLL" % FIXED)


if __name__ == "__main__":
    main()
