"""Write ``jagged-fixed-size.root`` with ROOT itself (the ``root`` wheel): a TTree whose ``Jet_v`` holds a
fixed-size array per jet (``Jet_v[nJet][3]/F``), a branch type uproot 5 reads but writes back wrongly (a file
it cannot read: the baskets say 12 bytes per entry and hold the entry offsets too). hepae must refuse it or
leave it out, never write it. Run from this directory: ``python make_fixtures.py``."""

import array
import random

import ROOT

random.seed(1)
file = ROOT.TFile("jagged-fixed-size.root", "RECREATE")
tree = ROOT.TTree("Events", "a jagged branch of fixed-size arrays")
n, pt, v = array.array("i", [0]), array.array("f", [0.0] * 8), array.array("f", [0.0] * 24)
tree.Branch("nJet", n, "nJet/I")
tree.Branch("Jet_pt", pt, "Jet_pt[nJet]/F")
tree.Branch("Jet_v", v, "Jet_v[nJet][3]/F")
for _ in range(50):
    n[0] = random.randint(0, 4)
    for i in range(n[0]):
        pt[i] = random.uniform(20.0, 100.0)
        for k in range(3):
            v[3 * i + k] = random.gauss(0.0, 1.0)
    tree.Fill()
file.Write()
file.Close()
