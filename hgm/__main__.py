from hgm.cli import main

main()
