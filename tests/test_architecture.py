"""The project's shape, checked from the source (tests/architecture.py reads every import,
module-level or inside a function, and every module named in a string): no import loop, import
chains of at most 8 modules, a config completed only at the entry points, no re-export shims."""
import ast

from architecture import REPO, cycles, import_graph, longest_chain, project_modules

MAX_CHAIN = 8
# where a config may be completed (`config.resolve`): get_config, and pretrain() for the configs
# users build by hand; builders read the keys they need with `config.setting`
RESOLVE_CALLERS = {('pretrain.config', 'get_config'), ('pretrain.train', 'pretrain')}


def test_no_import_loop_even_through_imports_inside_functions():
    graph = import_graph()
    assert cycles(graph) == []
    assert graph['pretrain.config'] == set()  # the config sits at the bottom: every builder reads it


def test_the_longest_import_chain_is_short():
    chain = longest_chain(import_graph())
    assert len(chain) <= MAX_CHAIN, ' -> '.join(chain)


def test_the_checker_sees_loops_and_chains_inside_functions():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert cycles(graph) == [['a', 'b', 'c']] and longest_chain({'a': {'b'}, 'b': {'c'}, 'c': set()}) == ['a', 'b', 'c']
    edges = import_graph()
    assert 'demo.demo' in edges['pretrain.__main__']  # named in a string, imported by importlib
    assert 'pretrain.train' in edges['demo.demo']  # imported inside a function


def resolve_callers() -> set[tuple[str, str]]:
    """(module, function) of every call of `pretrain.config.resolve`: as a bare name in the config
    module or in a module that imports it from there, or as `config.resolve`."""
    found = set()
    for module, path in project_modules().items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        imported = module == 'pretrain.config' or any(
            isinstance(n, ast.ImportFrom) and n.module == 'pretrain.config' and any(a.name == 'resolve' for a in n.names)
            for n in ast.walk(tree))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                if (isinstance(f, ast.Name) and f.id == 'resolve' and imported
                        or isinstance(f, ast.Attribute) and f.attr == 'resolve' and getattr(f.value, 'id', '') == 'config'):
                    found.add((module, func.name))
    return found


def test_a_config_is_resolved_only_at_the_entry_points():
    assert resolve_callers() == RESOLVE_CALLERS


def test_no_module_only_re_exports_another():
    """A moved module is imported from its new home: no star imports, no modules of imports alone."""
    for module, path in project_modules().items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        assert not any(isinstance(n, ast.ImportFrom) and any(a.name == '*' for a in n.names) for n in ast.walk(tree)), module
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if body and path.name != '__init__.py':
            assert not all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body), f'{module} only re-exports'
    assert (REPO / 'pretrain' / 'models.py').is_file()  # the seed's modules at the seed's paths


def test_the_readmes_module_map_names_every_module_and_only_those():
    import re
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    section = readme[readme.index('## Modules'):]
    section = section[:section.find('\n## ', 5)] if '\n## ' in section[5:] else section
    named = set(re.findall(r'`((?:pretrain|finetune|_utils|demo)/[\w/]+\.py)`', section))
    files = {str(p.relative_to(REPO)) for p in project_modules().values() if p.name != '__init__.py'}
    assert files - named == set(), 'modules missing from the README'
    assert named - files == set(), 'the README names modules that do not exist'
