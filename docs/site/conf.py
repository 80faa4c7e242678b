# The docs site's Sphinx configuration (docs/site/build.sh), from antsibull-docs sphinx-init, built offline: no
# intersphinx (the two references into Ansible's own docs resolve to rst/ansible-references.rst), Markdown guides
# through MyST, warnings are errors.
project = 'codis.ha'
copyright = 'codis.ha contributors'
title = 'codis.ha: Codis failover for Ansible'
html_short_title = 'codis.ha'

extensions = ['sphinx.ext.autodoc', 'sphinx_antsibull_ext', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

default_role = 'any'
nitpicky = True
# The guides link to files of the repository that are not pages of the site (scripts, tests, the changelog).
suppress_warnings = ['myst.xref_missing']
myst_heading_anchors = 3
