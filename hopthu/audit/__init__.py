"""`hopthu audit`: the auditor's report (DESIGN.md §6, issue 7; Art. 16).

The report joins three things an auditor needs side by side:

- the decree's articles and their control IDs (compliance/decree/DECREE.md, the
  project's copy of ../shared/DECREE.md; read by
  `decree`), with the Vietnamese titles of the original text;
- the compliance map (compliance/controls.yml, read by `controls`): where
  each control is implemented (files, task names) and which tests prove it;
- the evidence: JUnit XML from test runs (`junit`), in which every test
  carries its control IDs, and facts read from the inventory's hosts over
  SSH (`hosts`): OS, package versions, what the deploys left on them.

`join` builds the report's model from those and decides the verdict of each
control; `completeness` holds the rule that every decree control is either
implemented and proven on hosts or planned/not-applicable with a reason;
`render` writes report.html (self-contained) and report.md; `report` is the
one entry point, `write_report`, which `hopthu audit` (`command`) and the lab
call. The modules are imported only when used.
"""
