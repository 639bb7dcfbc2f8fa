from solusio.simulator.cli import main

main()
