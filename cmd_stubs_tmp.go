package main

func cmdEval(args []string) error    { return nil }
func cmdPredict(args []string) error { return nil }
func cmdReport(args []string) error  { return nil }
func cmdExport(args []string) error  { return nil }
func cmdProbe(args []string) error   { return nil }
func cmdSweep(args []string) error   { return nil }
