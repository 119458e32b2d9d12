from timestep.cli import main

main()
